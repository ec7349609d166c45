"""The numpy reference simulator: the executable form of ``specs/semantics.md``.

Float64 throughout, vectorised over batch and neurons; Python loops only over time steps and nodes.
A graph without cycles is run node by node over the whole sequence (stateless nodes see
``(T*batch, *shape)`` at once); a graph with cycles is run step by step. Both orders compute the same
thing because a node's output at step ``t`` depends only on its inputs up to ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping

import nir
import numpy as np

from snnx.errors import ValidationError
from snnx.ir.nodes import kind_of
from snnx.ir.prepare import PreparedGraph, prepare
from snnx.ir.dynamics import NeuronState, State

Array = np.ndarray

__all__ = ["NeuronState", "apply_stateless", "make_state", "simulate"]


def apply_stateless(node: nir.NIRNode, x: Array) -> Array:
    """Output of a stateless node for inputs ``x`` of shape (N, *shape)."""
    kind = kind_of(node)
    if kind.apply is None:
        msg = f"{kind.name} is not a stateless node"
        raise TypeError(msg)
    return kind.apply(node, x)


def make_state(node: nir.NIRNode, dt: float, x0: Array) -> State:
    """The reference state of a stateful node for a batch shaped like ``x0``."""
    kind = kind_of(node)
    return kind.state(node, dt, x0, spiking=kind.spiking)


# -- driver -------------------------------------------------------------------------------------------
def normalise_inputs(prepared: PreparedGraph, inputs: Array | Mapping[str, Array]) -> dict[str, Array]:
    """``{input_name: (T, batch, *shape)}`` float64 arrays, checked against the graph's Inputs.

    :raises ValidationError: a missing or unknown input, a wrong shape, an empty time axis or batch.
    """
    names = prepared.input_names
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
        try:
            arr = np.asarray(inputs[name], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            msg = f"input {name!r} is not numeric: {exc}"
            raise ValidationError(msg, node=name) from exc
        want = prepared.shapes[name]
        if arr.ndim != len(want) + 2 or tuple(arr.shape[2:]) != tuple(want):
            msg = (
                f"input {name!r} must have shape (T, batch, {', '.join(map(str, want))}) (time-major), "
                f"got {tuple(arr.shape)}"
            )
            raise ValidationError(msg, node=name)
        if not np.all(np.isfinite(arr)):
            msg = f"input {name!r} contains NaN or inf; inputs must be finite"
            raise ValidationError(msg, node=name)
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            msg = f"input {name!r} has shape {tuple(arr.shape)}: it needs at least one time step and one sample"
            raise ValidationError(msg, node=name)
        lengths.add(arr.shape[:2])
        out[name] = arr
    if len(lengths) > 1:
        msg = f"all inputs need the same (T, batch); got {sorted(lengths)}"
        raise ValidationError(msg)
    return out


def simulate(
    graph: nir.NIRGraph | PreparedGraph,
    inputs: Array | Mapping[str, Array],
    dt: float | None = None,
    *,
    record: bool = False,
) -> dict[str, Array]:
    """Run ``graph`` on time-major ``inputs`` and return every Output node's trace.

    :param graph: a NIR graph (nested subgraphs are flattened) or a prepared graph.
    :param inputs: ``(T, batch, *shape)`` for a single-input graph, or ``{input_name: array}``.
    :param dt: time step; defaults to the graph's contract ``dt`` (``specs/semantics.md`` §1).
    :param record: also return every node's trace, keyed by its (flattened) name.
    :returns: ``{output_name: (T, batch, *shape)}`` float64 arrays.
    """
    prepared = prepare(graph, dt=dt)
    xs = normalise_inputs(prepared, inputs)
    run = _run_stepwise if prepared.has_cycles else _run_layerwise
    # Parameters near the float64 range may overflow to inf/NaN: that is the result (and check calls it
    # a disagreement), not a warning from inside numpy.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        traces = run(prepared, xs)
    if record:
        return traces
    return {k: traces[k] for k in prepared.output_names}


def _in_shape(prepared: PreparedGraph, name: str) -> tuple[int, ...]:
    return prepared.shapes[prepared.schedule.preds[name][0][0]]


def _run_layerwise(prepared: PreparedGraph, xs: dict[str, Array]) -> dict[str, Array]:
    T, batch = next(iter(xs.values())).shape[:2]
    sched = prepared.schedule
    traces: dict[str, Array] = {}
    for name in sched.order:
        node = prepared.nodes[name]
        if name in xs:
            traces[name] = xs[name]
            continue
        x = np.zeros((T, batch, *_in_shape(prepared, name)))
        for src, _delayed in sched.preds[name]:
            x = x + traces[src]
        if kind_of(node, name).stateful:
            state = make_state(node, prepared.dt, x[0])
            traces[name] = np.stack([state.step(x[t]) for t in range(T)])
        else:
            y = apply_stateless(node, x.reshape(T * batch, *x.shape[2:]))
            traces[name] = y.reshape(T, batch, *y.shape[1:])
    return traces


def _run_stepwise(prepared: PreparedGraph, xs: dict[str, Array]) -> dict[str, Array]:
    T, batch = next(iter(xs.values())).shape[:2]
    sched = prepared.schedule
    current = {name: np.zeros((batch, *prepared.shapes[name])) for name in sched.order}
    states: dict[str, State] = {}
    traces = {name: np.zeros((T, batch, *prepared.shapes[name])) for name in sched.order}
    for t in range(T):
        previous = {src: current[src].copy() for src, _dst in sched.back_edges}
        for name in sched.order:
            node = prepared.nodes[name]
            if name in xs:
                y = xs[name][t]
            else:
                x = np.zeros((batch, *_in_shape(prepared, name)))
                for src, delayed in sched.preds[name]:
                    x = x + (previous[src] if delayed else current[src])
                if kind_of(node, name).stateful:
                    if name not in states:
                        states[name] = make_state(node, prepared.dt, x)
                    y = states[name].step(x)
                else:
                    y = apply_stateless(node, x)
            current[name] = y
            traces[name][t] = y
    return traces
