"""The prepared graph: what every backend, the reference, ``check`` and ``stats`` receive.

:func:`prepare` does, once, everything that has to happen before a graph can run: validate it
(structure, parameters, shapes), flatten nested subgraphs, compute the schedule and resolve the time
step. The result is immutable and carries all of it, so nothing downstream validates, flattens or
schedules again, and ``dt`` is an explicit field instead of something each step re-reads from
metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir

from snnx.errors import ValidationError
from snnx.ir.passes import flatten, input_names
from snnx.ir.schedule import Schedule, schedule
from snnx.ir.semantics import dt_of, set_graph_contract
from snnx.ir.validate import validate

Shape = tuple[int, ...]


@dataclass(frozen=True)
class PreparedGraph:
    """A validated, flat graph with its schedule, shapes and time step.

    :ivar graph: the flat graph (no nested ``NIRGraph``) with the contract written into its metadata
        (``metadata["snnx"]["dt"] == dt``); a copy, never the caller's object.
    :ivar dt: the time step every backend must use.
    :ivar schedule: evaluation order and back edges (:func:`snnx.ir.schedule.schedule`).
    :ivar shapes: per-sample output shape of every node of :attr:`graph`.
    :ivar warnings: what validation warned about (``dt/tau > 1`` and the like), one line each.
    """

    graph: nir.NIRGraph
    dt: float
    schedule: Schedule
    shapes: dict[str, Shape]
    warnings: tuple[str, ...] = ()

    @property
    def nodes(self) -> dict[str, nir.NIRNode]:
        """The flat graph's nodes by (flattened) name."""
        return self.graph.nodes

    @property
    def edges(self) -> list[tuple[str, str]]:
        """The flat graph's edges."""
        return self.graph.edges

    @property
    def input_names(self) -> list[str]:
        """The Input nodes a caller feeds, sorted."""
        return input_names(self.graph)

    @property
    def output_names(self) -> list[str]:
        """The Output nodes, sorted."""
        return sorted(k for k, n in self.graph.nodes.items() if isinstance(n, nir.Output))

    @property
    def has_cycles(self) -> bool:
        """Whether some edge closes a cycle."""
        return self.schedule.has_cycles


def prepare(graph: nir.NIRGraph | PreparedGraph, dt: float | None = None) -> PreparedGraph:
    """Validate, flatten, schedule and fix ``dt`` once.

    :param graph: a graph (possibly nested), or an already prepared one (returned as it is unless
        ``dt`` asks for another time step).
    :param dt: the time step; default the graph's stored ``dt``, else :data:`snnx.ir.semantics.DEFAULT_DT`.
    :raises ValidationError: naming the node at fault.
    """
    if isinstance(graph, PreparedGraph):
        if dt is None or float(dt) == graph.dt:
            return graph
        graph = graph.graph
    if not isinstance(graph, nir.NIRGraph):
        msg = f"expected a nir.NIRGraph, got {type(graph).__name__}"
        raise ValidationError(msg)
    step = dt_of(graph) if dt is None else float(dt)
    report = validate(graph, dt=step)
    flat = set_graph_contract(flatten(graph), dt=step)
    sched = schedule(flat)
    shapes = {name: report.shapes[name] for name in flat.nodes}
    return PreparedGraph(flat, step, sched, shapes, tuple(report.warnings))


def as_graph(graph: Any) -> nir.NIRGraph:
    """The NIR graph of a prepared graph, or the graph itself."""
    return graph.graph if isinstance(graph, PreparedGraph) else graph
