"""Structural validation and shape inference; every error names the node path (``hidden.lif``).

:func:`validate` raises the first :class:`~snnx.errors.ValidationError` it finds and otherwise returns
a :class:`Report` with the inferred per-sample shape of every node and any warnings (for instance a
forward-Euler step that is unstable because ``dt/tau > 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from snnx.errors import ValidationError
from snnx.ir.nodes import kind_of
from snnx.ir.passes import flatten
from snnx.ir.schedule import schedule
from snnx.ir.semantics import RESET_MODES, dt_of, i_init_of, reset_of, signed_of, v_init_of, version_of
from snnx.ir.shapes import conv_padding, declared_shape, fail, flatten_shape, pair

Shape = tuple[int, ...]

# Re-exported for the modules that resolve padding and pairs the way validation does.
__all__ = ["Report", "conv_padding", "flatten_shape", "infer_shapes", "pair", "validate"]


@dataclass
class Report:
    """What validation learned about a graph."""

    shapes: dict[str, Shape] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _check_finite(name: str, node: nir.NIRNode) -> None:
    for param in kind_of(node, name).params:
        value = getattr(node, param, None)
        if value is not None and np.asarray(value).dtype.kind not in "fiub":
            fail(f"{name}.{param}", f"must be a number or an array of numbers, got {np.asarray(value).dtype} data")
    for attr, value in vars(node).items():
        if attr in ("input_type", "output_type", "metadata") or value is None or isinstance(value, dict):
            continue
        if attr == "padding" and (isinstance(value, (str, bytes)) or np.asarray(value).dtype.kind in "SU"):
            continue  # "same" / "valid"
        arr = np.asarray(value)
        if arr.dtype.kind in "SUc" or isinstance(value, (str, bytes)):
            what = "complex" if arr.dtype.kind == "c" else "text"
            fail(f"{name}.{attr}", f"must be a real number or an array of real numbers, got {what} data")
        if arr.dtype.kind not in "fiu":
            continue
        if not np.all(np.isfinite(arr)):
            bad = "NaN" if np.any(np.isnan(arr)) else "inf"
            fail(f"{name}.{attr}", f"contains {bad} values; retrain or repair the parameter")


def _resolves(graph: nir.NIRGraph, end: str) -> bool:
    """Whether an edge endpoint names a node, or ``sub.inner`` a node inside a nested subgraph."""
    if end in graph.nodes:
        return True
    head, dot, rest = end.partition(".")
    return bool(dot) and isinstance(graph.nodes.get(head), nir.NIRGraph) and _resolves(graph.nodes[head], rest)


def _check_edges(graph: nir.NIRGraph, prefix: str = "") -> None:
    for src, dst in graph.edges:
        for end in (src, dst):
            if not _resolves(graph, end):
                known = ", ".join(sorted(graph.nodes)[:12])
                msg = f"edge ({src!r}, {dst!r}) refers to {prefix}{end!r}, which is not a node (nodes: {known})"
                raise ValidationError(msg, node=f"{prefix}{end}")
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _check_edges(node, f"{prefix}{name}.")


def check_dt(dt: object) -> float:
    """``dt`` as a float; :class:`ValidationError` unless it is a finite positive number."""
    try:
        value = float(dt)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        msg = f"the time step dt must be a finite positive number of seconds, got {dt!r} (e.g. --dt 1e-4)"
        raise ValidationError(msg)
    return value


def _check_state_shape(name: str, node: nir.NIRNode, shape: Shape) -> None:
    """``v_init``/``i_init`` must broadcast to the neuron shape."""
    kind = kind_of(node, name)
    inits = [("v_init", v_init_of)] if kind.neuron else []
    inits += [("i_init", i_init_of)] if kind.cuba else []
    for key, read in inits:
        got = np.shape(read(node))
        try:
            ok = np.broadcast_shapes(got, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            fail(f"{name}.{key}", f"has shape {got} but the node has {shape} neurons; store one value or one per neuron")


def _check_contract(name: str, node: nir.NIRNode, dt: float, warnings: list[str]) -> None:
    kind = kind_of(node, name)
    if kind.spiking and reset_of(node) not in RESET_MODES:
        fail(name, f"metadata snnx.reset is {reset_of(node)!r}; use 'value' or 'subtract'")
    if signed_of(node) and not (kind.spiking and reset_of(node) == "subtract"):
        fail(name, "metadata snnx.signed needs a spiking node with reset 'subtract' (specs/semantics.md §4)")
    inits = [("v_init", v_init_of)] if kind.neuron else []
    inits += [("i_init", i_init_of)] if kind.cuba else []
    for key, read in inits:
        try:
            value = read(node)
        except (TypeError, ValueError):
            fail(f"{name}.{key}", "is not a number or an array of numbers")
        if not np.all(np.isfinite(value)):
            fail(f"{name}.{key}", "contains NaN or inf")
    for tau_name in kind.time_constants:
        tau = getattr(node, tau_name, None)
        if tau is None:
            continue
        tau = np.asarray(tau, dtype=float)
        if np.any(tau <= 0):
            fail(f"{name}.{tau_name}", "time constants must be positive")
        if np.any(dt / tau > 1):
            warnings.append(
                f"node {name!r}: dt/{tau_name} = {float(np.max(dt / tau)):.3g} > 1, forward Euler is "
                "unstable; use a smaller dt (snnx --dt) or check the producer's time unit"
            )
    if kind.name == "Delay":
        delay = np.asarray(node.delay, dtype=float)
        if np.any(delay < 0):
            fail(f"{name}.delay", "delays must be non-negative")
        steps = delay / dt
        off = np.abs(steps - np.rint(steps))
        if np.any(off > 1e-6 * np.maximum(1.0, steps)):
            worst = float(steps.reshape(-1)[int(np.argmax(off.reshape(-1)))])
            warnings.append(
                f"node {name!r}: delay/dt = {worst:.4g} is not a whole number of steps; it is rounded to "
                f"{int(np.rint(worst))} (round half to even), as specs/semantics.md §4 says"
            )
    if kind.spiking:
        vth = np.asarray(node.v_threshold, dtype=float)
        if np.any(vth <= 0):
            warnings.append(
                f"node {name!r}: v_threshold <= 0 ({float(vth.min()):.3g}): the neuron fires without input "
                "whenever v rests above it; check the sign of the threshold"
            )
        v_reset = getattr(node, "v_reset", None)
        if reset_of(node) == "subtract" and v_reset is not None and np.any(np.asarray(v_reset, dtype=float) != 0):
            warnings.append(
                f"node {name!r}: reset 'subtract' ignores v_reset (which is non-zero here); "
                "v_reset only applies to reset 'value'"
            )


def nir_graph_of(graph: Any) -> Any:
    """The NIR graph inside a prepared graph (what ``lower(g, to="reference")`` returns), else ``graph``.

    Duck-typed: ``snnx.ir.prepare`` imports this module, so its class cannot be imported here.
    """
    inner = getattr(graph, "graph", None)
    return inner if not isinstance(graph, nir.NIRGraph) and isinstance(inner, nir.NIRGraph) else graph


def validate(graph: nir.NIRGraph, dt: float | None = None) -> Report:
    """Check structure, parameters and shapes of ``graph``; raise on the first error.

    :param graph: the graph, possibly with nested subgraphs.
    :param dt: time step to check stability against (default: the graph's contract dt).
    :raises ValidationError: naming the node (``outer.inner``) or ``node.parameter`` at fault.
    """
    graph = nir_graph_of(graph)  # a prepared graph (what lower(g, to="reference") gives) checks its NIR graph
    if not isinstance(graph, nir.NIRGraph):
        msg = f"expected a nir.NIRGraph, got {type(graph).__name__}"
        raise ValidationError(msg)
    _check_edges(graph)
    flat = flatten(graph, splice_io=False)
    if not any(isinstance(n, nir.Output) for n in flat.nodes.values()):
        msg = "the graph has no Output node; add one (nir.Output) after the last layer"
        raise ValidationError(msg)
    report = Report()
    version_of(graph)
    dt = check_dt(dt_of(graph) if dt is None else dt)
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
            declared = declared_shape(node.input_type.get("input"), name)
            if declared is None:
                fail(name, "Input node has no shape; give it one (nir.Input(input_type=np.array([...])))")
            shapes[name] = declared
            continue
        if not incoming:
            fail(name, "has no incoming edge; connect it or remove it")
        known = [(src, s) for src, s in incoming if s is not None]
        if not known:
            fail(name, "all of its inputs come through a cycle, so its shape is unknown")
        first_src, in_shape = known[0]
        for src, s in known[1:]:
            if s != in_shape:
                fail(name, f"its inputs disagree in shape: {first_src!r} gives {in_shape}, {src!r} gives {s}")
        in_shapes[name] = in_shape
        shapes[name] = kind_of(node, name).shape(name, node, in_shape)
        _check_state_shape(name, node, shapes[name])
    for src, dst in sorted(sched.back_edges):
        if shapes[src] != in_shapes[dst]:
            fail(dst, f"recurrent input from {src!r} has shape {shapes[src]}, other inputs give {in_shapes[dst]}")
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
        fail(dead[0], "has no path to an Output node (a dead branch or cycle); connect it or remove it")


def infer_shapes(graph: nir.NIRGraph) -> dict[str, Shape]:
    """Per-sample output shape of every node of the flattened graph (validates on the way)."""
    return validate(graph).shapes
