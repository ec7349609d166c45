"""Structural validation and shape inference; every error names the node path (``hidden.lif``).

:func:`validate` raises the first :class:`~snnx.errors.ValidationError` it finds and otherwise returns
a :class:`Report` with the inferred per-sample shape of every node and any warnings (for instance a
forward-Euler step that is unstable because ``dt/tau > 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nir
import numpy as np

from snnx.errors import ValidationError
from snnx.ir.passes import flatten
from snnx.ir.schedule import schedule
from snnx.ir.semantics import (
    CUBA_TYPES,
    RESET_MODES,
    SPIKING_TYPES,
    STATEFUL_TYPES,
    dt_of,
    i_init_of,
    reset_of,
    v_init_of,
)

Shape = tuple[int, ...]

#: Parameters whose shape is the neuron shape, per node type.
NEURON_PARAMS: dict[type, tuple[str, ...]] = {
    nir.I: ("r",),
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.LI: ("tau", "r", "v_leak"),
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    nir.Threshold: ("threshold",),
    nir.Delay: ("delay",),
    nir.Scale: ("scale",),
}
TIME_CONSTANTS = ("tau", "tau_mem", "tau_syn")


@dataclass
class Report:
    """What validation learned about a graph."""

    shapes: dict[str, Shape] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _fail(node: str, msg: str) -> None:
    raise ValidationError(f"node {node!r}: {msg}", node=node)


def _shape(value: object) -> Shape | None:
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype == object or arr.size == 0 and arr.ndim == 1:
        return None
    return tuple(int(v) for v in arr.reshape(-1))


def _pair(value: object, n: int, name: str, what: str) -> tuple[int, ...]:
    arr = np.asarray(value).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.size != n:
        _fail(name, f"{what} must have {n} entries, got {arr.tolist()}")
    return tuple(int(v) for v in arr)


def conv_padding(
    node: nir.NIRNode, kernel: Shape, dilation: Shape, name: str = "conv"
) -> tuple[tuple[int, int], ...]:
    """Per spatial dim ``(before, after)`` padding, resolving ``"same"``/``"valid"`` as torch does.

    ``name`` is the node's path, for the error raised when the padding is malformed.
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
        _fail(name, f"padding must be an int, a tuple, 'same' or 'valid', got {pad!r}")
    p = _pair(pad, len(kernel), name, "padding")
    return tuple((v, v) for v in p)


def _conv_out(node_name: str, node: nir.NIRNode, in_shape: Shape, nd: int) -> Shape:
    w = np.asarray(node.weight)
    if w.ndim != nd + 2:
        _fail(node_name, f"weight must be {nd + 2}-D (C_out, C_in/groups, kernel...), got shape {w.shape}")
    groups = int(np.asarray(node.groups))
    c_in = w.shape[1] * groups
    if len(in_shape) != nd + 1 or in_shape[0] != c_in:
        _fail(node_name, f"takes input of shape ({c_in}, {', '.join(['N'] * nd)}), got {in_shape}")
    if w.shape[0] % groups:
        _fail(node_name, f"C_out={w.shape[0]} is not divisible by groups={groups}")
    declared = _shape(node.input_shape)
    if declared is not None and tuple(declared) != tuple(in_shape[1:]):
        _fail(node_name, f"declares input_shape {declared} but receives spatial shape {in_shape[1:]}")
    bias = np.asarray(node.bias)
    if bias.ndim != 0 and bias.shape != (w.shape[0],):
        _fail(f"{node_name}.bias", f"must have shape ({w.shape[0]},), got {bias.shape}")
    kernel = w.shape[2:]
    stride = _pair(node.stride, nd, node_name, "stride")
    dilation = _pair(node.dilation, nd, node_name, "dilation")
    pads = conv_padding(node, kernel, dilation, node_name)
    out = []
    for size, k, s, d, (p0, p1) in zip(in_shape[1:], kernel, stride, dilation, pads):
        o = (size + p0 + p1 - d * (k - 1) - 1) // s + 1
        if o <= 0:
            _fail(node_name, f"kernel {tuple(kernel)} does not fit input {in_shape} with this padding")
        out.append(o)
    return (int(w.shape[0]), *out)


def _pool_out(node_name: str, node: nir.NIRNode, in_shape: Shape) -> Shape:
    if len(in_shape) != 3:
        _fail(node_name, f"takes (C, H, W) input, got {in_shape}")
    k = _pair(node.kernel_size, 2, node_name, "kernel_size")
    s = _pair(node.stride, 2, node_name, "stride")
    p = _pair(node.padding, 2, node_name, "padding")
    out = [(n + 2 * pp - kk) // ss + 1 for n, kk, ss, pp in zip(in_shape[1:], k, s, p)]
    if min(out) <= 0:
        _fail(node_name, f"kernel {k} does not fit input {in_shape}")
    return (in_shape[0], *out)


def flatten_shape(in_shape: Shape, start_dim: int, end_dim: int) -> Shape:
    """Output shape of NIR ``Flatten`` on a per-sample shape (python-style negative dims)."""
    n = len(in_shape)
    start = start_dim + n if start_dim < 0 else start_dim
    end = end_dim + n if end_dim < 0 else end_dim
    if not 0 <= start <= end < n:
        msg = f"start_dim={start_dim}, end_dim={end_dim} are out of range for shape {in_shape}"
        raise ValidationError(msg)
    return (*in_shape[:start], int(np.prod(in_shape[start : end + 1])), *in_shape[end + 1 :])


def _param_shape(name: str, node: nir.NIRNode) -> Shape:
    """The neuron shape a parameterised node implies (``()`` when all parameters are scalars)."""
    shapes = []
    for pname in NEURON_PARAMS[type(node)]:
        value = getattr(node, pname, None)
        if value is None:
            continue
        shapes.append(np.asarray(value).shape)
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        detail = ", ".join(f"{p}{np.asarray(getattr(node, p)).shape}" for p in NEURON_PARAMS[type(node)])
        _fail(name, f"parameter shapes do not agree: {detail}")
    return ()


def _output_shape(name: str, node: nir.NIRNode, in_shape: Shape) -> Shape:
    """Check that ``node`` accepts ``in_shape`` and return its output shape."""
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            _fail(f"{name}.weight", f"must be 2-D (out, in), got shape {w.shape}")
        if in_shape != (w.shape[1],):
            _fail(name, f"takes input of shape ({w.shape[1]},) but receives {in_shape}")
        if isinstance(node, nir.Affine):
            b = np.asarray(node.bias)
            if b.ndim != 0 and b.shape != (w.shape[0],):
                _fail(f"{name}.bias", f"must have shape ({w.shape[0]},), got {b.shape}")
        return (int(w.shape[0]),)
    if isinstance(node, nir.Conv2d):
        return _conv_out(name, node, in_shape, 2)
    if isinstance(node, nir.Conv1d):
        return _conv_out(name, node, in_shape, 1)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return _pool_out(name, node, in_shape)
    if isinstance(node, nir.Flatten):
        declared = _shape(node.input_type.get("input") if node.input_type else None)
        if declared is not None and declared != in_shape:
            _fail(name, f"declares input type {declared} but receives {in_shape}")
        try:
            return flatten_shape(in_shape, int(node.start_dim), int(node.end_dim))
        except ValidationError as exc:
            _fail(name, str(exc))
    if isinstance(node, (nir.Input, nir.Output)):
        key = "input" if isinstance(node, nir.Input) else "output"
        types = node.input_type if isinstance(node, nir.Input) else node.output_type
        declared = _shape(types.get(key)) if isinstance(types, dict) else None
        if declared is not None and declared != in_shape and not (
            declared == (1,) and in_shape == ()
        ):
            fix = "fix the declared shape" if isinstance(node, nir.Input) else "fix the Output shape"
            _fail(name, f"{type(node).__name__} declares shape {declared} but receives {in_shape}; {fix}")
        return in_shape
    if type(node) in NEURON_PARAMS:
        pshape = _param_shape(name, node)
        if pshape and pshape != in_shape:
            # Scalars broadcast; a parameter vector fixes the neuron shape.
            try:
                if np.broadcast_shapes(pshape, in_shape) != in_shape:
                    raise ValueError
            except ValueError:
                _fail(name, f"has {int(np.prod(pshape))} neurons of shape {pshape} but receives {in_shape}")
        return in_shape
    _fail(name, f"unknown node type {type(node).__name__}")
    return in_shape


def _check_finite(name: str, node: nir.NIRNode) -> None:
    for attr, value in vars(node).items():
        if attr in ("input_type", "output_type", "metadata") or isinstance(value, (str, bytes)):
            continue
        arr = np.asarray(value) if not isinstance(value, dict) else None
        if arr is None or arr.dtype.kind not in "fiuc":
            continue
        if not np.all(np.isfinite(arr)):
            bad = "NaN" if np.any(np.isnan(arr)) else "inf"
            _fail(f"{name}.{attr}", f"contains {bad} values; retrain or repair the parameter")


def _check_edges(graph: nir.NIRGraph, prefix: str = "") -> None:
    for src, dst in graph.edges:
        for end in (src, dst):
            head = end.split(".")[0]
            if end not in graph.nodes and head not in graph.nodes:
                known = ", ".join(sorted(graph.nodes)[:12])
                msg = f"edge ({src!r}, {dst!r}) refers to {prefix}{end!r}, which is not a node (nodes: {known})"
                raise ValidationError(msg, node=f"{prefix}{end}")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _check_edges(node, f"{prefix}{name}.")


def _check_contract(name: str, node: nir.NIRNode, dt: float, warnings: list[str]) -> None:
    if isinstance(node, SPIKING_TYPES) and reset_of(node) not in RESET_MODES:
        _fail(name, f"metadata snnx.reset is {reset_of(node)!r}; use 'value' or 'subtract'")
    if isinstance(node, STATEFUL_TYPES) and not np.all(np.isfinite(v_init_of(node))):
        _fail(f"{name}.v_init", "contains NaN or inf")
    if isinstance(node, CUBA_TYPES) and not np.all(np.isfinite(i_init_of(node))):
        _fail(f"{name}.i_init", "contains NaN or inf")
    for tau_name in TIME_CONSTANTS:
        tau = getattr(node, tau_name, None)
        if tau is None:
            continue
        tau = np.asarray(tau, dtype=float)
        if np.any(tau <= 0):
            _fail(f"{name}.{tau_name}", "time constants must be positive")
        if np.any(dt / tau > 1):
            warnings.append(
                f"node {name!r}: dt/{tau_name} = {float(np.max(dt / tau)):.3g} > 1, forward Euler is "
                "unstable; use a smaller dt (snnx --dt) or check the producer's time unit"
            )
    if isinstance(node, nir.Delay):
        d = np.asarray(node.delay, dtype=float)
        if np.any(d < 0):
            _fail(f"{name}.delay", "delays must be non-negative")


def validate(graph: nir.NIRGraph, dt: float | None = None) -> Report:
    """Check structure, parameters and shapes of ``graph``; raise on the first error.

    :param graph: the graph, possibly with nested subgraphs.
    :param dt: time step to check stability against (default: the graph's contract dt).
    :raises ValidationError: naming the node (``outer.inner``) or ``node.parameter`` at fault.
    """
    if not isinstance(graph, nir.NIRGraph):
        msg = f"expected a nir.NIRGraph, got {type(graph).__name__}"
        raise ValidationError(msg)
    _check_edges(graph)
    flat = flatten(graph, splice_io=False)
    if not any(isinstance(n, nir.Output) for n in flat.nodes.values()):
        msg = "the graph has no Output node; add one (nir.Output) after the last layer"
        raise ValidationError(msg)
    report = Report()
    dt = dt_of(graph) if dt is None else float(dt)
    for name, node in flat.nodes.items():
        _check_finite(name, node)
        _check_contract(name, node, dt, report.warnings)

    sched = schedule(flat)
    _check_outputs_reachable(flat)
    shapes: dict[str, Shape] = {}
    in_shapes: dict[str, Shape] = {}
    for name in sched.order:
        node = flat.nodes[name]
        incoming = [(src, shapes.get(src)) for src, _delayed in sched.preds[name]]
        if isinstance(node, nir.Input) and not incoming:
            declared = _shape(node.input_type.get("input"))
            if declared is None:
                _fail(name, "Input node has no shape; give it one (nir.Input(input_type=np.array([...])))")
            shapes[name] = declared
            continue
        if not incoming:
            _fail(name, "has no incoming edge; connect it or remove it")
        known = [(src, s) for src, s in incoming if s is not None]
        if not known:
            _fail(name, "all of its inputs come through a cycle, so its shape is unknown")
        first_src, in_shape = known[0]
        for src, s in known[1:]:
            if s != in_shape:
                _fail(name, f"its inputs disagree in shape: {first_src!r} gives {in_shape}, {src!r} gives {s}")
        in_shapes[name] = in_shape
        shapes[name] = _output_shape(name, node, in_shape)
    for src, dst in sorted(sched.back_edges):
        if shapes[src] != in_shapes[dst]:
            _fail(dst, f"recurrent input from {src!r} has shape {shapes[src]}, other inputs give {in_shapes[dst]}")
    report.shapes = shapes
    return report


def _check_outputs_reachable(flat: nir.NIRGraph) -> None:
    preds: dict[str, list[str]] = {n: [] for n in flat.nodes}
    for src, dst in flat.edges:
        preds[dst].append(src)
    sinks = [n for n, node in flat.nodes.items() if isinstance(node, nir.Output)]
    alive = set(sinks)
    frontier = list(sinks)
    while frontier:
        for p in preds[frontier.pop()]:
            if p not in alive:
                alive.add(p)
                frontier.append(p)
    dead = sorted(set(flat.nodes) - alive)
    if dead:
        _fail(dead[0], "has no path to an Output node (a dead branch or cycle); connect it or remove it")


def infer_shapes(graph: nir.NIRGraph) -> dict[str, Shape]:
    """Per-sample output shape of every node of the flattened graph (validates on the way)."""
    return validate(graph).shapes
