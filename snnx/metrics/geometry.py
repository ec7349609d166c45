"""Fan-out geometry of synaptic layers: how many output elements each input element touches.

The **fan-out** of an input element is the exact number of output elements it touches:
``out_features`` for Affine/Linear, 1 for Scale; for a convolution ``C_out/groups`` times the number of
output positions whose window covers it (borders, stride, dilation and padding included, padding taps
excluded); for a pool the number of windows covering it. One rule per synaptic kind in :data:`FAN_OUT`,
keyed by the node-kind name of :mod:`snnx.ir.nodes` (its ``weighted`` kinds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from snnx.errors import ValidationError
from snnx.ir.nodes import WEIGHTED_KINDS, find_kind
from snnx.ir.shapes import conv_padding, pair

Array = np.ndarray
Shape = tuple[int, ...]
#: ``rule(node, in_shape, out_shape, name) -> int array of shape in_shape``.
FanOutRule = Callable[[Any, Shape, Shape, str], Array]


def window_counts(size: int, kernel: int, stride: int, dilation: int, pad_before: int, out: int) -> Array:
    """For each of ``size`` input positions: how many of the ``out`` windows read it (padding excluded)."""
    counts = np.zeros(size, dtype=np.int64)
    taps = np.arange(out)[:, None] * stride - pad_before + np.arange(kernel)[None, :] * dilation
    taps = taps[(taps >= 0) & (taps < size)]
    np.add.at(counts, taps, 1)
    return counts


def spatial_counts(in_spatial, out_spatial, kernel, stride, dilation, pads) -> Array:
    """Product over dimensions of :func:`window_counts`: windows are products of per-dim ranges."""
    result = np.ones((), dtype=np.int64)
    for n, o, k, s, d, (p0, _p1) in zip(in_spatial, out_spatial, kernel, stride, dilation, pads):
        counts = window_counts(n, k, s, d, p0, o)
        result = np.multiply.outer(result, counts)
    return result


def _dense(node: Any, in_shape: Shape, out_shape: Shape, name: str) -> Array:
    return np.full(in_shape, int(out_shape[0]), dtype=np.int64)


def _elementwise(node: Any, in_shape: Shape, out_shape: Shape, name: str) -> Array:
    return np.ones(in_shape, dtype=np.int64)


def _conv(nd: int) -> FanOutRule:
    def rule(node: Any, in_shape: Shape, out_shape: Shape, name: str) -> Array:
        w = np.asarray(node.weight)
        kernel = w.shape[2:]
        stride = pair(node.stride, nd, name, "stride")
        dilation = pair(node.dilation, nd, name, "dilation")
        pads = conv_padding(node, kernel, dilation)
        groups = int(np.asarray(node.groups))
        spatial = spatial_counts(in_shape[1:], out_shape[1:], kernel, stride, dilation, pads)
        per_channel = w.shape[0] // groups
        return np.broadcast_to(spatial * per_channel, in_shape).astype(np.int64)

    return rule


def _pool(node: Any, in_shape: Shape, out_shape: Shape, name: str) -> Array:
    k = pair(node.kernel_size, 2, name, "kernel_size")
    s = pair(node.stride, 2, name, "stride")
    p = pair(node.padding, 2, name, "padding")
    spatial = spatial_counts(in_shape[1:], out_shape[1:], k, s, (1, 1), [(pp, pp) for pp in p])
    return np.broadcast_to(spatial, in_shape).astype(np.int64)


#: The fan-out rule of every synaptic (``weighted``) node kind, by kind name.
FAN_OUT: dict[str, FanOutRule] = {
    "Affine": _dense,
    "Linear": _dense,
    "Scale": _elementwise,
    "Conv1d": _conv(1),
    "Conv2d": _conv(2),
    "SumPool2d": _pool,
    "AvgPool2d": _pool,
}


def _window_area(node: Any, name: str) -> float:
    k = pair(node.kernel_size, 2, name, "kernel_size")
    return float(k[0] * k[1])


#: Synaptic kinds that add their inputs with unit weights (the ANN does additions there, not MACs)
#: and pass events on: how many input events one unit of their output stands for (AvgPool divides by
#: the window).
POOLS: dict[str, Callable[[Any, str], float]] = {
    "SumPool2d": lambda node, name: 1.0,
    "AvgPool2d": _window_area,
}


def fan_out(node: Any, in_shape: Shape, out_shape: Shape, name: str = "?") -> Array:
    """Exact fan-out of every input element of a synaptic node: an int array of shape ``in_shape``.

    :raises ValidationError: for a node that is not synaptic.
    """
    kind = find_kind(node)
    rule = FAN_OUT.get(kind.name) if kind is not None and kind.weighted else None
    if rule is None:
        msg = (
            f"node {name!r} ({type(node).__name__}) is not a synaptic layer; fan-out is defined for "
            f"{', '.join(sorted(WEIGHTED_KINDS))}"
        )
        raise ValidationError(msg, node=name)
    return rule(node, tuple(in_shape), tuple(out_shape), name)


def event_factor(node: Any, name: str) -> float | None:
    """How many events one unit of a pool's output stands for; ``None`` for a node that is no pool."""
    kind = find_kind(node)
    factor = POOLS.get(kind.name) if kind is not None else None
    return None if factor is None else factor(node, name)


__all__ = ["FAN_OUT", "POOLS", "event_factor", "fan_out", "spatial_counts", "window_counts"]
