"""The numpy reference simulator: the executable form of ``specs/semantics.md``.

Float64 throughout, vectorised over batch and neurons; Python loops only over time steps and nodes.
A graph without cycles is run node by node over the whole sequence (stateless nodes see
``(T*batch, *shape)`` at once); a graph with cycles is run step by step. Both orders compute the same
thing because a node's output at step ``t`` depends only on its inputs up to ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from snnx.errors import ValidationError
from snnx.ir.passes import flatten, input_names
from snnx.ir.schedule import schedule
from snnx.ir.semantics import SPIKING_TYPES, STATEFUL_TYPES, dt_of, i_init_of, reset_of, v_init_of
from snnx.ir.validate import _pair, conv_padding, flatten_shape, validate

Array = np.ndarray


# -- stateless operators: act on (N, *shape) with any leading N ---------------------------------------
def _f64(value: Any) -> Array:
    return np.asarray(value, dtype=np.float64)


def conv_nd(x: Array, node: nir.NIRNode, nd: int) -> Array:
    """Cross-correlation of ``x`` (N, C_in, *spatial) with a NIR Conv1d/Conv2d node."""
    w = _f64(node.weight)
    groups = int(np.asarray(node.groups))
    kernel = w.shape[2:]
    stride = _pair(node.stride, nd, "conv", "stride")
    dilation = _pair(node.dilation, nd, "conv", "dilation")
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
    bias = _f64(node.bias)
    if bias.ndim:
        y = y + bias.reshape(-1, *([1] * nd))
    else:
        y = y + bias
    return y


def sum_pool(x: Array, node: nir.NIRNode) -> Array:
    """Windowed sum of ``x`` (N, C, H, W) with zero padding."""
    k = _pair(node.kernel_size, 2, "pool", "kernel_size")
    s = _pair(node.stride, 2, "pool", "stride")
    p = _pair(node.padding, 2, "pool", "padding")
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = sliding_window_view(x, k, axis=(2, 3))[:, :, :: s[0], :: s[1]]
    return win.sum(axis=(-2, -1))


def _flatten(x: Array, node: nir.Flatten) -> Array:
    return x.reshape(x.shape[0], *flatten_shape(x.shape[1:], int(node.start_dim), int(node.end_dim)))


def apply_stateless(node: nir.NIRNode, x: Array) -> Array:
    """Output of a stateless node for inputs ``x`` of shape (N, *shape)."""
    if isinstance(node, nir.Affine):
        return x @ _f64(node.weight).T + _f64(node.bias)
    if isinstance(node, nir.Linear):
        return x @ _f64(node.weight).T
    if isinstance(node, nir.Scale):
        return x * _f64(node.scale)
    if isinstance(node, nir.Conv2d):
        return conv_nd(x, node, 2)
    if isinstance(node, nir.Conv1d):
        return conv_nd(x, node, 1)
    if isinstance(node, nir.SumPool2d):
        return sum_pool(x, node)
    if isinstance(node, nir.AvgPool2d):
        k = _pair(node.kernel_size, 2, "pool", "kernel_size")
        return sum_pool(x, node) / float(k[0] * k[1])
    if isinstance(node, nir.Flatten):
        return _flatten(x, node)
    if isinstance(node, nir.Threshold):
        return (x > _f64(node.threshold)).astype(np.float64)
    if isinstance(node, (nir.Input, nir.Output)):
        return x
    msg = f"{type(node).__name__} is not a stateless node"
    raise TypeError(msg)


# -- stateful nodes -----------------------------------------------------------------------------------
class NeuronState:
    """State and one-step update of a neuron node (I, IF, LI, LIF, CubaLI, CubaLIF) or a Delay."""

    def __init__(self, node: nir.NIRNode, dt: float, x0: Array) -> None:
        self.node = node
        self.dt = dt
        shape = x0.shape
        if isinstance(node, nir.Delay):
            self.steps = np.rint(_f64(node.delay) / dt).astype(np.int64)
            depth = int(self.steps.max(initial=0)) + 1
            self.history = np.zeros((depth, *shape))
            self.t = 0
            return
        self.v = np.broadcast_to(v_init_of(node), shape).astype(np.float64).copy()
        if isinstance(node, (nir.CubaLI, nir.CubaLIF)):
            self.i = np.broadcast_to(i_init_of(node), shape).astype(np.float64).copy()
        self.reset = reset_of(node) if isinstance(node, SPIKING_TYPES) else None

    def step(self, x: Array) -> Array:
        """Advance one time step on input ``x`` (batch, *shape) and return the node's output."""
        node, dt = self.node, self.dt
        if isinstance(node, nir.Delay):
            depth = self.history.shape[0]
            self.history[self.t % depth] = x
            idx = (self.t - self.steps) % depth
            out = np.take_along_axis(self.history, np.broadcast_to(idx, x.shape)[None], axis=0)[0]
            out = np.where(self.t - self.steps >= 0, out, 0.0)
            self.t += 1
            return out
        if isinstance(node, (nir.I, nir.IF)):
            self.v = self.v + dt * _f64(node.r) * x
        elif isinstance(node, (nir.LI, nir.LIF)):
            tau = _f64(node.tau)
            self.v = self.v + (dt / tau) * (_f64(node.v_leak) - self.v + _f64(node.r) * x)
        else:  # CubaLI, CubaLIF: the current first, then the voltage with the new current
            self.i = self.i + (dt / _f64(node.tau_syn)) * (-self.i + _f64(node.w_in) * x)
            tau_mem = _f64(node.tau_mem)
            self.v = self.v + (dt / tau_mem) * (_f64(node.v_leak) - self.v + _f64(node.r) * self.i)
        if self.reset is None:
            return self.v.copy()
        vth = _f64(node.v_threshold)
        spikes = self.v > vth
        if self.reset == "subtract":
            self.v = self.v - vth * spikes
        else:
            self.v = np.where(spikes, _f64(node.v_reset), self.v)
        return spikes.astype(np.float64)


def is_stateful(node: nir.NIRNode) -> bool:
    """Whether the node carries state across time steps (a neuron or a Delay)."""
    return isinstance(node, (*STATEFUL_TYPES, nir.Delay))


# -- driver -------------------------------------------------------------------------------------------
def _normalise_inputs(
    flat: nir.NIRGraph, inputs: Array | Mapping[str, Array], shapes: dict[str, tuple[int, ...]]
) -> dict[str, Array]:
    names = input_names(flat)
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            msg = f"the graph has {len(names)} inputs ({', '.join(names)}); pass a dict name -> array"
            raise ValidationError(msg)
        inputs = {names[0]: inputs}
    missing = [n for n in names if n not in inputs]
    extra = [n for n in inputs if n not in names]
    if missing or extra:
        msg = f"inputs must be exactly {names}; missing {missing}, unknown {extra}"
        raise ValidationError(msg)
    out = {}
    lengths = set()
    for name in names:
        arr = np.asarray(inputs[name], dtype=np.float64)
        want = shapes[name]
        if arr.ndim != len(want) + 2 or tuple(arr.shape[2:]) != tuple(want):
            msg = (
                f"input {name!r} must have shape (T, batch, {', '.join(map(str, want))}) (time-major), "
                f"got {tuple(arr.shape)}"
            )
            raise ValidationError(msg, node=name)
        lengths.add(arr.shape[:2])
        out[name] = arr
    if len(lengths) > 1:
        msg = f"all inputs need the same (T, batch); got {sorted(lengths)}"
        raise ValidationError(msg)
    return out


def simulate(
    graph: nir.NIRGraph,
    inputs: Array | Mapping[str, Array],
    dt: float | None = None,
    *,
    record: bool = False,
) -> dict[str, Array]:
    """Run ``graph`` on time-major ``inputs`` and return every Output node's trace.

    :param graph: a NIR graph (nested subgraphs are flattened).
    :param inputs: ``(T, batch, *shape)`` for a single-input graph, or ``{input_name: array}``.
    :param dt: time step; defaults to the graph's contract ``dt`` (``specs/semantics.md`` §1).
    :param record: also return every node's trace, keyed by its (flattened) name.
    :returns: ``{output_name: (T, batch, *shape)}`` float64 arrays.
    """
    dt = dt_of(graph, default=dt) if dt is None else float(dt)
    shapes = validate(graph, dt=dt).shapes
    flat = flatten(graph)
    sched = schedule(flat)
    xs = _normalise_inputs(flat, inputs, shapes)
    T, batch = next(iter(xs.values())).shape[:2]
    traces = (_run_stepwise if sched.has_cycles else _run_layerwise)(flat, sched, xs, shapes, dt, T, batch)
    if record:
        return traces
    return {k: traces[k] for k, n in flat.nodes.items() if isinstance(n, nir.Output)}


def _sum_inputs(preds, values, shape, lead) -> Array:
    total = np.zeros((*lead, *shape))
    for src, _delayed in preds:
        total = total + values[src]
    return total


def _run_layerwise(flat, sched, xs, shapes, dt, T, batch) -> dict[str, Array]:
    traces: dict[str, Array] = {}
    for name in sched.order:
        node = flat.nodes[name]
        if name in xs:
            traces[name] = xs[name]
            continue
        x = _sum_inputs(sched.preds[name], traces, _in_shape(sched, name, shapes), (T, batch))
        if is_stateful(node):
            state = NeuronState(node, dt, x[0])
            traces[name] = np.stack([state.step(x[t]) for t in range(T)])
        else:
            y = apply_stateless(node, x.reshape(T * batch, *x.shape[2:]))
            traces[name] = y.reshape(T, batch, *y.shape[1:])
    return traces


def _in_shape(sched, name, shapes) -> tuple[int, ...]:
    src = sched.preds[name][0][0]
    return shapes[src]


def _run_stepwise(flat, sched, xs, shapes, dt, T, batch) -> dict[str, Array]:
    current = {name: np.zeros((batch, *shapes[name])) for name in sched.order}
    states: dict[str, NeuronState] = {}
    traces = {name: np.zeros((T, batch, *shapes[name])) for name in sched.order}
    for t in range(T):
        previous = {src: current[src].copy() for src, _dst in sched.back_edges}
        for name in sched.order:
            node = flat.nodes[name]
            if name in xs:
                y = xs[name][t]
            else:
                x = np.zeros((batch, *_in_shape(sched, name, shapes)))
                for src, delayed in sched.preds[name]:
                    x = x + (previous[src] if delayed else current[src])
                if is_stateful(node):
                    if name not in states:
                        states[name] = NeuronState(node, dt, x)
                    y = states[name].step(x)
                else:
                    y = apply_stateless(node, x)
            current[name] = y
            traces[name][t] = y
    return traces
