"""The reference simulator's stateless operators, numpy float64 on ``(N, *shape)`` arrays.

``N`` is any leading size: the reference runs a stateless node on a whole ``(T*batch, *shape)`` trace at
once when the graph has no cycles. :mod:`snnx.ir.nodes` assigns one operator per stateless node kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from snnx.ir.shapes import conv_padding, flatten_shape, pair, pool_geometry

Array = np.ndarray


def f64(value: Any) -> Array:
    """A NIR parameter as a float64 array."""
    return np.asarray(value, dtype=np.float64)


def identity(node: Any, x: Array) -> Array:
    """Input/Output nodes pass their input on."""
    return x


def affine(node: Any, x: Array) -> Array:
    """``x @ W.T + b``."""
    return x @ f64(node.weight).T + f64(node.bias)


def linear(node: Any, x: Array) -> Array:
    """``x @ W.T``."""
    return x @ f64(node.weight).T


def scale(node: Any, x: Array) -> Array:
    """Elementwise ``s * x``."""
    return x * f64(node.scale)


def threshold(node: Any, x: Array) -> Array:
    """``1.0 where x > threshold`` (strict, like every spike of the contract)."""
    return (x > f64(node.threshold)).astype(np.float64)


def flatten(node: Any, x: Array) -> Array:
    """NIR Flatten on the per-sample dims."""
    return x.reshape(x.shape[0], *flatten_shape(x.shape[1:], int(node.start_dim), int(node.end_dim)))


def conv_nd(x: Array, node: Any, nd: int) -> Array:
    """Cross-correlation of ``x`` (N, C_in, *spatial) with a NIR Conv1d/Conv2d node."""
    w = f64(node.weight)
    groups = int(np.asarray(node.groups))
    kernel = w.shape[2:]
    stride = pair(node.stride, nd, "conv", "stride")
    dilation = pair(node.dilation, nd, "conv", "dilation")
    pads = conv_padding(node, kernel, dilation)
    x = np.pad(x, ((0, 0), (0, 0), *pads))
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    win = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    # win: (N, C, *out_full, *span) -> apply stride on out dims and dilation on window dims
    out_sl = tuple(slice(None, None, s) for s in stride)
    dil_sl = tuple(slice(None, None, d) for d in dilation)
    win = win[(slice(None), slice(None), *out_sl, *dil_sl)]
    n, c = win.shape[:2]
    out_spatial = win.shape[2 : 2 + nd]
    if groups == 1:
        # tensordot hands the contraction to BLAS: several times faster than einsum here.
        axes_x = [1, *range(2 + nd, 2 + 2 * nd)]
        y = np.tensordot(win, w, axes=(axes_x, list(range(1, 2 + nd))))
        y = np.moveaxis(y, -1, 1)
    else:
        cg = c // groups
        og = w.shape[0] // groups
        win = win.reshape(n, groups, cg, *out_spatial, *kernel)
        wg = w.reshape(groups, og, cg, *kernel)
        sp = "xy"[:nd]
        ks = "hw"[:nd]
        y = np.einsum(f"ngc{sp}{ks},goc{ks}->ngo{sp}", win, wg, optimize=True)
        y = y.reshape(n, w.shape[0], *out_spatial)
    bias = f64(node.bias)
    return y + (bias.reshape(-1, *([1] * nd)) if bias.ndim else bias)


def conv(nd: int) -> Callable[[Any, Array], Array]:
    """The operator of an ``nd``-dimensional convolution node."""

    def apply(node: Any, x: Array) -> Array:
        return conv_nd(x, node, nd)

    return apply


def sum_pool(node: Any, x: Array) -> Array:
    """Windowed sum of ``x`` (N, C, H, W) with zero padding."""
    k, s, p = pool_geometry(node)
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = sliding_window_view(x, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
    return win.sum(axis=(-2, -1))


def avg_pool(node: Any, x: Array) -> Array:
    """Windowed mean, zero padding counted (``count_include_pad``)."""
    k, _s, _p = pool_geometry(node)
    return sum_pool(node, x) / float(k[0] * k[1])
