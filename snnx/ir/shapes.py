"""Shape rules: how each node kind's per-sample output shape follows from its input shape.

Every rule has the signature ``rule(path, node, in_shape) -> out_shape`` and raises
:class:`~snnx.errors.ValidationError` naming ``path`` (the node, or ``node.parameter``) when the node
cannot take ``in_shape``. :mod:`snnx.ir.nodes` assigns one rule per node kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from snnx.errors import ValidationError

Shape = tuple[int, ...]


def fail(path: str, msg: str) -> NoReturn:
    """Raise the one-line error for node ``path``."""
    raise ValidationError(f"node {path!r}: {msg}", node=path)


def declared_shape(value: object, path: str = "?") -> Shape | None:
    """A shape stored in a NIR type or attribute, or ``None`` when it is absent or unknown.

    :raises ValidationError: naming ``path``, when the stored shape is not a list of positive integers.
    """
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype == object or arr.size == 0 and arr.ndim == 1:
        return None
    if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 1):
        fail(path, f"declares the shape {arr.reshape(-1).tolist()!r}, which is not a list of positive whole numbers")
    return tuple(int(v) for v in arr.reshape(-1))


def pair(value: object, n: int, path: str, what: str) -> tuple[int, ...]:
    """``value`` (a scalar or ``n`` entries) as ``n`` ints; an error naming ``path`` otherwise."""
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        fail(path, f"{what} must have {n} entries, got {arr.tolist()}")
    try:
        return tuple(int(v) for v in arr)
    except (TypeError, ValueError):
        fail(path, f"{what} must be integers, got {arr.tolist()}")


def conv_padding(node: Any, kernel: Shape, dilation: Shape, path: str = "conv") -> tuple[tuple[int, int], ...]:
    """Per spatial dim ``(before, after)`` padding, resolving ``"same"``/``"valid"`` as torch does.

    ``path`` is the node's path, for the error raised when the padding is malformed.
    """
    pad = node.padding
    if isinstance(pad, bytes):
        pad = pad.decode()
    if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO":
        pad = str(pad.reshape(-1)[0] if pad.ndim else pad[()])
        pad = pad.decode() if isinstance(pad, bytes) else pad
    if isinstance(pad, str):
        if pad == "valid":
            return tuple((0, 0) for _ in kernel)
        if pad == "same":
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)
        fail(path, f"padding must be an int, a tuple, 'same' or 'valid', got {pad!r}")
    p = pair(pad, len(kernel), path, "padding")
    return tuple((v, v) for v in p)


def flatten_shape(in_shape: Shape, start_dim: int, end_dim: int) -> Shape:
    """Output shape of NIR ``Flatten`` on a per-sample shape (python-style negative dims)."""
    n = len(in_shape)
    start = start_dim + n if start_dim < 0 else start_dim
    end = end_dim + n if end_dim < 0 else end_dim
    if not 0 <= start <= end < n:
        msg = f"start_dim={start_dim}, end_dim={end_dim} are out of range for shape {in_shape}"
        raise ValidationError(msg)
    return (*in_shape[:start], int(np.prod(in_shape[start : end + 1])), *in_shape[end + 1 :])


# -- the rules ------------------------------------------------------------------------------------------
def same(path: str, node: Any, in_shape: Shape) -> Shape:
    """The output has the input's shape."""
    return in_shape


def boundary(path: str, node: Any, in_shape: Shape) -> Shape:
    """Input/Output: identity, but a declared shape must match what arrives."""
    is_input = type(node).__name__ == "Input"
    types = node.input_type if is_input else node.output_type
    declared = declared_shape(types.get("input" if is_input else "output"), path) if isinstance(types, dict) else None
    if declared is not None and declared != in_shape and not (declared == (1,) and in_shape == ()):
        fix = "fix the declared shape" if is_input else "fix the Output shape"
        fail(path, f"{type(node).__name__} declares shape {declared} but receives {in_shape}; {fix}")
    return in_shape


def dense(path: str, node: Any, in_shape: Shape) -> Shape:
    """Affine/Linear: ``(in,) -> (out,)`` with a 2-D ``(out, in)`` weight."""
    w = np.asarray(node.weight)
    if w.ndim != 2:
        fail(f"{path}.weight", f"must be 2-D (out, in), got shape {w.shape}")
    if in_shape != (w.shape[1],):
        fail(path, f"takes input of shape ({w.shape[1]},) but receives {in_shape}")
    bias = getattr(node, "bias", None)
    if bias is not None:
        b = np.asarray(bias)
        if b.ndim != 0 and b.shape != (w.shape[0],):
            fail(f"{path}.bias", f"must have shape ({w.shape[0]},), got {b.shape}")
    return (int(w.shape[0]),)


def conv(nd: int) -> Callable[[str, Any, Shape], Shape]:
    """The rule of an ``nd``-dimensional convolution ``(C_in, *spatial) -> (C_out, *spatial')``."""

    def rule(path: str, node: Any, in_shape: Shape) -> Shape:
        w = np.asarray(node.weight)
        if w.ndim != nd + 2:
            fail(path, f"weight must be {nd + 2}-D (C_out, C_in/groups, kernel...), got shape {w.shape}")
        groups = int(np.asarray(node.groups))
        if groups < 1:
            fail(path, f"groups must be >= 1, got {groups}")
        c_in = w.shape[1] * groups
        if len(in_shape) != nd + 1 or in_shape[0] != c_in:
            fail(path, f"takes input of shape ({c_in}, {', '.join(['N'] * nd)}), got {in_shape}")
        if w.shape[0] % groups:
            fail(path, f"C_out={w.shape[0]} is not divisible by groups={groups}")
        declared = declared_shape(node.input_shape, path)
        if declared is not None and tuple(declared) != tuple(in_shape[1:]):
            fail(path, f"declares input_shape {declared} but receives spatial shape {in_shape[1:]}")
        bias = np.asarray(node.bias)
        if bias.ndim != 0 and bias.shape != (w.shape[0],):
            fail(f"{path}.bias", f"must have shape ({w.shape[0]},), got {bias.shape}")
        kernel = w.shape[2:]
        stride = pair(node.stride, nd, path, "stride")
        dilation = pair(node.dilation, nd, path, "dilation")
        if min(stride) < 1 or min(dilation) < 1:
            fail(path, f"stride {stride} and dilation {dilation} must be >= 1")
        pads = conv_padding(node, kernel, dilation, path)
        if min(p for both in pads for p in both) < 0:
            fail(path, f"padding {pads} must be >= 0")
        out = []
        for size, k, s, d, (p0, p1) in zip(in_shape[1:], kernel, stride, dilation, pads):
            o = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
            if o <= 0:
                fail(path, f"kernel {tuple(kernel)} does not fit input {in_shape} with this padding")
            out.append(o)
        return (int(w.shape[0]), *out)

    return rule


def pool_geometry(node: Any, path: str = "pool") -> tuple[Shape, Shape, Shape]:
    """``(kernel, stride, padding)`` of a 2-D pooling node, each two ints."""
    k = pair(node.kernel_size, 2, path, "kernel_size")
    s = pair(node.stride, 2, path, "stride")
    p = pair(node.padding, 2, path, "padding")
    return k, s, p


def pool(path: str, node: Any, in_shape: Shape) -> Shape:
    """SumPool2d/AvgPool2d: ``(C, H, W) -> (C, H', W')``."""
    if len(in_shape) != 3:
        fail(path, f"takes (C, H, W) input, got {in_shape}")
    k, s, p = pool_geometry(node, path)
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        fail(path, f"kernel_size {k} and stride {s} must be >= 1, padding {p} >= 0")
    out = [(n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(in_shape[1:], k, s, p)]
    if min(out) <= 0:
        fail(path, f"kernel {k} does not fit input {in_shape}")
    return (in_shape[0], *out)


def flatten(path: str, node: Any, in_shape: Shape) -> Shape:
    """Flatten: merge ``start_dim..end_dim`` of the per-sample shape."""
    declared = declared_shape(node.input_type.get("input") if node.input_type else None, path)
    if declared is not None and declared != in_shape:
        fail(path, f"declares input type {declared} but receives {in_shape}")
    try:
        return flatten_shape(in_shape, int(node.start_dim), int(node.end_dim))
    except ValidationError as exc:
        fail(path, str(exc))


def param_shape(path: str, node: Any, params: tuple[str, ...]) -> Shape:
    """The neuron shape the parameters imply (``()`` when all are scalars)."""
    found = [np.asarray(getattr(node, p)).shape for p in params if getattr(node, p, None) is not None]
    try:
        return tuple(np.broadcast_shapes(*found))
    except ValueError:
        detail = ", ".join(f"{p}{np.asarray(getattr(node, p)).shape}" for p in params)
        fail(path, f"parameter shapes do not agree: {detail}")


def elementwise(params: tuple[str, ...]) -> Callable[[str, Any, Shape], Shape]:
    """The rule of a node acting elementwise: its parameters must broadcast to the input shape."""

    def rule(path: str, node: Any, in_shape: Shape) -> Shape:
        pshape = param_shape(path, node, params)
        if pshape and pshape != in_shape:
            try:
                ok = np.broadcast_shapes(pshape, in_shape) == in_shape
            except ValueError:
                ok = False
            if not ok:
                fail(path, f"has {int(np.prod(pshape))} neurons of shape {pshape} but receives {in_shape}")
        # NIR's rule: a parameter is one value, or one value per neuron (the full shape). Any other shape
        # would broadcast silently along some axis ((C,) against (C, H, W) lines up with W, not C).
        for p in params:
            value = getattr(node, p, None)
            if value is None:
                continue
            shape = np.shape(value)
            if int(np.prod(shape)) != 1 and tuple(shape) != tuple(in_shape):
                fail(
                    f"{path}.{p}",
                    f"has shape {tuple(shape)}; a parameter is one value or one per neuron {tuple(in_shape)} "
                    f"(expand per-channel values, e.g. np.broadcast_to(v.reshape(-1, 1, 1), {tuple(in_shape)}))",
                )
        return in_shape

    return rule
