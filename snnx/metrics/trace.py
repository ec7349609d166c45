"""Node traces for the metrics: recorded on a lowered torch model, or completed from a partial set.

:func:`trace_module` records a lowered torch :class:`~snnx.torch.graph.GraphModule` (torch is imported
only inside it); :func:`backend_traces` lowers a prepared graph to a torch backend and records it;
:func:`complete_traces` recomputes the nodes missing from a partial set with the reference's
stateless operators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from snnx.errors import SnnxError, ValidationError
from snnx.ir.nodes import kind_of
from snnx.ir.prepare import PreparedGraph
from snnx.ir.reference import apply_stateless

Array = np.ndarray


def complete_traces(prepared: PreparedGraph, traces: Mapping[str, Array]) -> dict[str, Array]:
    """``traces`` plus every missing stateless node, recomputed from its inputs (acyclic graphs).

    :raises ValidationError: a stateful node or an Input has no trace, or the graph has cycles.
    """
    sched = prepared.schedule
    full = {k: np.asarray(v, dtype=np.float64) for k, v in traces.items() if k in prepared.nodes}
    for name in sched.order:
        if name in full:
            continue
        node = prepared.nodes[name]
        preds = sched.preds[name]
        if kind_of(node, name).stateful or not preds or sched.has_cycles:
            msg = (
                f"no trace for node {name!r} ({type(node).__name__}); pass traces of every input and "
                "stateful node (or let snnx.metrics.stats run the reference simulator)"
            )
            raise ValidationError(msg, node=name)
        x = sum(full[src] for src, _delayed in preds)
        T, B = x.shape[:2]
        y = apply_stateless(node, x.reshape(T * B, *x.shape[2:]))
        full[name] = y.reshape(T, B, *y.shape[1:])
    return full


def trace_module(model: Any, inputs: Any) -> tuple[Any, dict[str, Array]]:
    """Run a lowered :class:`~snnx.torch.graph.GraphModule` and record every neuron's output trace.

    :param model: a module from ``snnx.lower(graph, to=<torch backend>)``.
    :param inputs: ``(T, batch, *shape)`` tensor or array, or ``{input_name: ...}``.
    :returns: ``(output, traces)``: the model's output and ``{node_name: numpy trace}`` for every Input and
        stateful node, ready for ``stats(graph, traces=traces)``.
    :raises SnnxError: when the model is not a GraphModule or has cycles (it then runs step by step and
        its neurons' ``forward`` is not called; use the reference simulator on ``snnx.raise_(model)``).
    """
    import torch

    from snnx.torch.graph import GraphModule, TorchNeuron

    if not isinstance(model, GraphModule):
        msg = f"trace_module needs a snnx GraphModule (from a torch backend), got {type(model).__name__}"
        raise SnnxError(msg)
    if model.has_cycles:
        msg = (
            "the model has cycles and runs step by step; record traces with "
            "snnx.simulate(snnx.raise_(model), x, record=True)"
        )
        raise SnnxError(msg)
    recorded: dict[str, Array] = {}
    handles = []
    for name in model.order:
        module = model.layer(name)
        if isinstance(module, TorchNeuron):
            def hook(_mod, _args, out, name=name):
                recorded[name] = out.detach().cpu().double().numpy()
            handles.append(module.register_forward_hook(hook))
    try:
        xs = inputs if isinstance(inputs, Mapping) else {model.input_names[0]: inputs}
        for k, v in xs.items():
            recorded[k] = torch.as_tensor(v).detach().cpu().double().numpy()
        output = model(dict(xs) if len(xs) > 1 else next(iter(xs.values())))
    finally:
        for h in handles:
            h.remove()
    return output, recorded


def backend_traces(
    prepared: PreparedGraph, inputs: Mapping[str, Array], backend: str, device: str = "cpu"
) -> dict[str, Array]:
    """Lower ``prepared`` to the torch backend ``backend`` on ``device`` and record its traces on ``inputs``.

    :raises SnnxError: naming the backend when its model cannot be traced (not a torch GraphModule,
        or a graph with cycles).
    """
    import torch

    from snnx.api import lower

    native = lower(prepared, to=backend, device=device)
    try:
        xs = {k: torch.as_tensor(np.asarray(v, dtype=np.float32), device=device) for k, v in inputs.items()}
        with torch.no_grad():
            _, traces = trace_module(native, xs)
    except SnnxError as exc:
        msg = f"cannot record traces on backend {backend!r}: {exc}"
        raise SnnxError(msg) from exc
    return traces


__all__ = ["backend_traces", "complete_traces", "trace_module"]
