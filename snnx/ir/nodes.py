"""The one table of NIR node kinds that every part of snnx reads.

Each :class:`NodeKind` says what a node type is (stateful? spiking? a neuron with a membrane?),
which parameters have the neuron's shape, how its output shape follows from its input shape, and how
the reference simulator computes it. Validation, the reference simulator, capability checks, metrics
and the torch executor all look a node up here instead of keeping their own lists of types, so adding
a node type is one entry in :data:`KINDS` plus each backend's fold.

Shape rules live in :mod:`snnx.ir.shapes`, the reference's stateless operators in
:mod:`snnx.ir.ops` and its state updates in :mod:`snnx.ir.dynamics`; this module only ties them to
the node types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from snnx.errors import ValidationError
from snnx.ir import dynamics, ops, shapes

Shape = tuple[int, ...]
#: ``rule(path, node, in_shape) -> out_shape``; raises :class:`ValidationError` naming ``path``.
ShapeRule = Callable[[str, Any, Shape], Shape]
#: ``apply(node, x) -> y`` on ``(N, *shape)`` arrays: a stateless node's reference operator.
Apply = Callable[[Any, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NodeKind:
    """What snnx knows about one NIR node type.

    :ivar name: the NIR class name (``"LIF"``), the key of :data:`KINDS` and of capability lists.
    :ivar cls: the ``nir`` class.
    :ivar stateful: carries state across time steps (neurons and ``Delay``).
    :ivar neuron: has a membrane ``v`` (and ``v_init``): I, IF, LI, LIF, CubaLI, CubaLIF.
    :ivar spiking: emits spikes and resets (IF, LIF, CubaLIF); carries a reset mode.
    :ivar cuba: has a synaptic current ``i`` (and ``i_init``) updated before the membrane.
    :ivar spike_output: its output is a spike train (0/1): the spiking neurons and Threshold.
    :ivar weighted: a synaptic layer (weights, or a pool's unit weights, multiply its input): dense,
        conv, pooling and Scale; metrics count its operations.
    :ivar relay: passes its input's values on without arithmetic (Input, Output, Flatten, Delay): its
        output is made of events exactly when its input is.
    :ivar io: a graph boundary (Input/Output), an identity inside the graph.
    :ivar params: parameters whose shape is the neuron shape (broadcast against the input).
    :ivar time_constants: parameters that are time constants (positive; ``dt/tau`` stability).
    :ivar shape: the shape rule (see :data:`ShapeRule`).
    :ivar apply: the reference operator of a stateless node (``None`` for stateful ones).
    :ivar state: the reference state class of a stateful node (``None`` for stateless ones).
    """

    name: str
    cls: type
    stateful: bool = False
    neuron: bool = False
    spiking: bool = False
    cuba: bool = False
    spike_output: bool = False
    weighted: bool = False
    relay: bool = False
    io: bool = False
    params: tuple[str, ...] = ()
    time_constants: tuple[str, ...] = ()
    shape: ShapeRule = shapes.same
    apply: Apply | None = None
    state: type[dynamics.State] | None = None


def _neuron(name: str, cls: type, params: tuple[str, ...], taus: tuple[str, ...] = (), **flags: bool) -> NodeKind:
    return NodeKind(
        name,
        cls,
        stateful=True,
        neuron=True,
        params=params,
        time_constants=taus,
        shape=shapes.elementwise(params),
        state=dynamics.NeuronState,
        spike_output=flags.get("spiking", False),
        **flags,
    )


_TABLE: tuple[NodeKind, ...] = (
    NodeKind("Input", nir.Input, io=True, relay=True, shape=shapes.boundary, apply=ops.identity),
    NodeKind("Output", nir.Output, io=True, relay=True, shape=shapes.boundary, apply=ops.identity),
    NodeKind("Affine", nir.Affine, weighted=True, shape=shapes.dense, apply=ops.affine),
    NodeKind("Linear", nir.Linear, weighted=True, shape=shapes.dense, apply=ops.linear),
    NodeKind("Conv1d", nir.Conv1d, weighted=True, shape=shapes.conv(1), apply=ops.conv(1)),
    NodeKind("Conv2d", nir.Conv2d, weighted=True, shape=shapes.conv(2), apply=ops.conv(2)),
    NodeKind("SumPool2d", nir.SumPool2d, weighted=True, shape=shapes.pool, apply=ops.sum_pool),
    NodeKind("AvgPool2d", nir.AvgPool2d, weighted=True, shape=shapes.pool, apply=ops.avg_pool),
    NodeKind(
        "Scale", nir.Scale, weighted=True, params=("scale",), shape=shapes.elementwise(("scale",)),
        apply=ops.scale,
    ),
    NodeKind("Flatten", nir.Flatten, relay=True, shape=shapes.flatten, apply=ops.flatten),
    NodeKind(
        "Threshold", nir.Threshold, spike_output=True, params=("threshold",), shape=shapes.elementwise(("threshold",)),
        apply=ops.threshold,
    ),
    NodeKind(
        "Delay", nir.Delay, stateful=True, relay=True, params=("delay",), shape=shapes.elementwise(("delay",)),
        state=dynamics.DelayState,
    ),
    _neuron("I", nir.I, ("r",)),
    _neuron("IF", nir.IF, ("r", "v_threshold", "v_reset"), spiking=True),
    _neuron("LI", nir.LI, ("tau", "r", "v_leak"), ("tau",)),
    _neuron("LIF", nir.LIF, ("tau", "r", "v_leak", "v_threshold", "v_reset"), ("tau",), spiking=True),
    _neuron("CubaLI", nir.CubaLI, ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), ("tau_syn", "tau_mem"), cuba=True),
    _neuron(
        "CubaLIF",
        nir.CubaLIF,
        ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
        ("tau_syn", "tau_mem"),
        cuba=True,
        spiking=True,
    ),
)

#: Every node kind a flat graph can hold, by NIR class name. Nested ``NIRGraph`` nodes are not kinds:
#: they are flattened away (:func:`snnx.ir.passes.flatten`) before anything reads this table.
KINDS: dict[str, NodeKind] = {kind.name: kind for kind in _TABLE}
_BY_CLASS: dict[type, NodeKind] = {kind.cls: kind for kind in _TABLE}


def _names(pred: Callable[[NodeKind], bool]) -> frozenset[str]:
    return frozenset(k.name for k in _TABLE if pred(k))


ALL_KINDS: frozenset[str] = frozenset(KINDS)
NEURON_KINDS: frozenset[str] = _names(lambda k: k.neuron)
SPIKING_KINDS: frozenset[str] = _names(lambda k: k.spiking)
STATEFUL_KINDS: frozenset[str] = _names(lambda k: k.stateful)
CUBA_KINDS: frozenset[str] = _names(lambda k: k.cuba)
WEIGHTED_KINDS: frozenset[str] = _names(lambda k: k.weighted)
SPIKE_OUTPUT_KINDS: frozenset[str] = _names(lambda k: k.spike_output)


def find_kind(node: Any) -> NodeKind | None:
    """The kind of ``node``, or ``None`` for a type snnx does not know (or a nested graph)."""
    kind = _BY_CLASS.get(type(node))
    if kind is None:  # a subclass of a nir class counts as that class
        kind = next((k for cls, k in _BY_CLASS.items() if isinstance(node, cls)), None)
    return kind


def kind_of(node: Any, path: str = "?") -> NodeKind:
    """The kind of ``node``; :class:`ValidationError` naming ``path`` when snnx has no such kind."""
    kind = find_kind(node)
    if kind is None:
        msg = (
            f"node {path!r}: unknown node type {type(node).__name__}; snnx knows "
            f"{', '.join(sorted(KINDS))} (and nested NIRGraph)"
        )
        raise ValidationError(msg, node=path)
    return kind


def _flag(node: Any, attr: str) -> bool:
    kind = find_kind(node)
    return bool(kind is not None and getattr(kind, attr))


def is_neuron(node: Any) -> bool:
    """Whether ``node`` has a membrane (I, IF, LI, LIF, CubaLI, CubaLIF)."""
    return _flag(node, "neuron")


def is_spiking(node: Any) -> bool:
    """Whether ``node`` emits spikes and resets (IF, LIF, CubaLIF)."""
    return _flag(node, "spiking")


def is_stateful(node: Any) -> bool:
    """Whether ``node`` carries state across time steps (a neuron or a Delay)."""
    return _flag(node, "stateful")


def is_cuba(node: Any) -> bool:
    """Whether ``node`` has a synaptic current (CubaLI, CubaLIF)."""
    return _flag(node, "cuba")


def is_weighted(node: Any) -> bool:
    """Whether ``node`` is a synaptic layer (dense, conv, pooling, Scale)."""
    return _flag(node, "weighted")


def is_io(node: Any) -> bool:
    """Whether ``node`` is a graph boundary (Input or Output)."""
    return _flag(node, "io")


def names_of(kinds: Iterable[NodeKind]) -> list[str]:
    """Sorted kind names, for messages."""
    return sorted(k.name for k in kinds)


__all__ = [
    "ALL_KINDS",
    "CUBA_KINDS",
    "KINDS",
    "NEURON_KINDS",
    "SPIKE_OUTPUT_KINDS",
    "SPIKING_KINDS",
    "STATEFUL_KINDS",
    "WEIGHTED_KINDS",
    "NodeKind",
    "find_kind",
    "is_cuba",
    "is_io",
    "is_neuron",
    "is_spiking",
    "is_stateful",
    "is_weighted",
    "kind_of",
]
