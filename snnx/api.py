"""The public operations behind ``snnx``'s top-level functions and CLI commands."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError, ValidationError
from snnx.ir.io import load
from snnx.ir.nodes import kind_of
from snnx.ir.prepare import PreparedGraph
from snnx.ir.prepare import prepare as prepare_graph
from snnx.ir.reference import simulate
from snnx.plugins import get_backend, get_backends

GraphLike = nir.NIRGraph | PreparedGraph | str | os.PathLike
RTOL = 1e-5


def as_graph(graph: GraphLike) -> nir.NIRGraph | PreparedGraph:
    """A graph object from a graph, a prepared graph or a path to a ``.nir`` file."""
    return graph if isinstance(graph, (nir.NIRGraph, PreparedGraph)) else load(graph)


def prepare(graph: GraphLike, dt: float | None = None) -> PreparedGraph:
    """Validate, flatten, schedule and fix ``dt`` once: what every backend's ``lower`` receives.

    See :class:`snnx.ir.prepare.PreparedGraph`; ``graph`` may also be a ``.nir`` path.
    """
    return prepare_graph(as_graph(graph), dt=dt)


def lower(
    graph: GraphLike, to: str, *, dt: float | None = None, device: Any = None, **options: Any
) -> Any:
    """Lower a NIR graph to backend ``to`` and return its native model.

    For ``to="reference"`` that is a :class:`snnx.plugins.reference.ReferenceModel`, the prepared graph
    (``.graph`` is the flat NIR graph; ``snnx.save`` and ``snnx.validate`` take it as they take a graph).

    :param graph: a graph or a ``.nir`` path.
    :param to: backend name (``snnx plugins`` lists them).
    :param dt: override the graph's time step.
    :param device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"mps"``: the model is built on the
        CPU and moved there with ``.to(device)``, like any module (torch backends only).
    :param options: passed to the backend's ``lower``.
    :raises UnsupportedNodeError: the backend refuses the graph; the message gives every reason.
    :raises DeviceError: the device is absent here or the backend runs on the CPU only.
    """
    from snnx.device import move, resolve_device

    backend = get_backend(to)
    target = resolve_device(device, to)  # before any work: a wrong device fails in milliseconds
    prepared = prepare(graph, dt=dt)
    backend.check_accepts(prepared)
    model = move(backend.lower(prepared, **options), target)
    try:
        model.snnx_backend = backend.name
    except (AttributeError, TypeError):  # models that take no attributes (e.g. a file path)
        pass
    return model


def raise_(model: Any, backend: str | None = None) -> nir.NIRGraph:
    """Export a model produced by :func:`lower` (possibly trained since) back to a NIR graph."""
    name = backend or getattr(model, "snnx_backend", None)
    if name is None:
        msg = "cannot tell which backend made this model; pass backend=NAME (snnx raise --from NAME)"
        raise SnnxError(msg)
    return get_backend(name).raise_(model)


def random_inputs(
    graph: nir.NIRGraph | PreparedGraph, steps: int, batch: int = 1, seed: int = 0, rate: float = 0.5
) -> dict[str, np.ndarray]:
    """Bernoulli spike trains (probability ``rate`` per step) for every Input of ``graph``."""
    prepared = prepare_graph(graph)
    rng = np.random.default_rng(seed)
    return {
        n: (rng.random((steps, batch, *prepared.shapes[n])) < rate).astype(np.float64)
        for n in prepared.input_names
    }


def read_inputs(path: str | os.PathLike, graph: nir.NIRGraph | PreparedGraph) -> dict[str, np.ndarray]:
    """Inputs from an ``.npz`` (one array per Input name, or a single array for a one-input graph) or
    from NIRData traces (``.nird``, as the conformance cases store their inputs)."""
    import zipfile

    import h5py

    from snnx.errors import NirFileError
    from snnx.ir.io import load_traces

    prepared = prepare_graph(graph)
    if not os.path.isfile(path):
        msg = f"no such file: '{path}'"
        raise NirFileError(msg)
    if h5py.is_hdf5(path):
        arrays, _dt = load_traces(path, prepared.shapes)
    elif zipfile.is_zipfile(path):
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            msg = f"cannot read inputs from '{path}': a damaged .npz file ({exc})"
            raise NirFileError(msg) from exc
    else:
        msg = f"cannot read inputs from '{path}': not an .npz (zip) file nor NIRData (.nird, HDF5)"
        raise NirFileError(msg)
    names = prepared.input_names
    if set(names) == set(arrays):
        chosen = {n: arrays[n] for n in names}
    elif len(names) == 1 and len(arrays) == 1:
        chosen = {names[0]: next(iter(arrays.values()))}
    else:
        # Extra arrays are refused too: a misspelt input name must not be silently ignored.
        msg = f"'{path}' holds arrays {sorted(arrays)}; the graph's inputs are {names} (one array named after each)"
        raise ValidationError(msg)
    for name, value in chosen.items():
        if value.dtype.kind in "fiub" and not np.all(np.isfinite(value)):
            msg = f"input {name!r} in '{path}' contains NaN or inf; inputs must be finite"
            raise ValidationError(msg, node=name)
    return chosen


def run(
    graph: GraphLike,
    inputs: Any,
    backend: str = "reference",
    dt: float | None = None,
    *,
    device: Any = None,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` with a backend; returns ``{output: (T, batch, *shape)}``.

    :param device: where a torch backend runs (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``); the
        outputs come back as numpy arrays either way.
    :param options: passed to the backend's ``lower`` (not allowed for the reference).
    """
    from snnx.device import resolve_device

    device = resolve_device(device, backend)
    prepared = prepare(graph, dt=dt)
    if not isinstance(inputs, dict):
        names = prepared.input_names
        inputs = {names[0]: inputs} if len(names) == 1 else inputs
    if backend == "reference" and not options:
        return simulate(prepared, inputs)
    b = get_backend(backend)
    model = lower(prepared, to=backend, device=device, **options)
    return {k: np.asarray(v) for k, v in b.run(model, inputs).items()}


def _emits_spikes(node: nir.NIRNode, name: str) -> bool:
    # A Threshold node's output is a spike train too, though it has no state to reset.
    return kind_of(node, name).spike_output


def spiking_outputs(graph: nir.NIRGraph | PreparedGraph) -> set[str]:
    """Output nodes fed only by spiking nodes: their traces are compared exactly."""
    prepared = prepare_graph(graph)
    result = set()
    for name in prepared.output_names:
        srcs = [a for a, b in prepared.edges if b == name]
        if srcs and all(_emits_spikes(prepared.nodes[s], s) for s in srcs):
            result.add(name)
    return result


@dataclass
class Agreement:
    """How one backend's outputs compare with the reference's on the same input.

    ``status`` is ``"agree"`` only when something was actually compared: ``"vacuous"`` means the traces
    match but no spiking node fired in the reference (and no non-spiking output moved), so the check
    said nothing about spikes or resets; it is not a pass. A NaN or inf in a backend's output is always
    a disagreement.

    :ivar compared: the nodes whose traces were compared (the Outputs, plus every internal spiking
        node when the backend could run the graph with probes on them; see :func:`check`).
    :ivar silent: spiking nodes among ``compared`` that never fired in the reference.
    :ivar reasons: for ``"refused"``/``"unavailable"``, each reason on its own (``detail`` joins them
        with ``"; "``, which a reason may itself contain).
    """

    backend: str
    status: str  # "agree", "disagree", "vacuous", "approximate", "refused", "unavailable", "error"
    detail: str = ""
    spike_mismatches: int = 0
    spikes_total: int = 0
    max_abs_error: float = 0.0
    per_output: dict[str, dict[str, float]] = field(default_factory=dict)
    compared: list[str] = field(default_factory=list)
    silent: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("agree", "approximate", "refused", "unavailable")


def _graph_spikers(prepared: PreparedGraph) -> list[str]:
    """Every node whose output is a spike train (spiking neurons and Threshold)."""
    return [n for n in prepared.schedule.order if _emits_spikes(prepared.nodes[n], n)]


def compare(
    graph: nir.NIRGraph | PreparedGraph,
    reference: dict[str, np.ndarray],
    other: dict[str, np.ndarray],
    backend: str,
    *,
    spiking: set[str] | None = None,
    record: dict[str, np.ndarray] | None = None,
) -> Agreement:
    """Compare backend traces with reference traces by the rule of ``specs/semantics.md`` §8.

    :param reference: the reference's traces by name (Outputs, and possibly probed internal nodes).
    :param spiking: which of those names carry spikes (default: the graph's spiking Outputs).
    :param record: the reference's trace of every node (``simulate(record=True)``); when given, a run in
        which no spiking node of the graph fired anywhere is ``"vacuous"`` rather than ``"agree"``.
    """
    spiking = spiking_outputs(graph) if spiking is None else spiking
    result = Agreement(backend=backend, status="agree", compared=sorted(reference))
    nonzero = False
    for name, ref in reference.items():
        if name not in other:
            return Agreement(backend, "error", f"backend returned no output {name!r}")
        got = np.asarray(other[name], dtype=np.float64)
        if got.shape != ref.shape:
            return Agreement(backend, "error", f"output {name!r} has shape {got.shape}, expected {ref.shape}")
        finite = np.isfinite(got)
        non_finite = int(got.size - np.count_nonzero(finite))
        diff = np.abs(got - ref)
        err = float(np.max(diff, initial=0.0)) if not non_finite else float("inf")
        result.max_abs_error = max(result.max_abs_error, err)
        if name in spiking:
            mism = int(np.sum(~(got == ref)))  # NaN != anything
            result.spike_mismatches += mism
            # both signs count (a signed neuron's -1 is a spike too, §4): ref.sum() would be the net count,
            # zero for a neuron that took back every spike it fired
            count = float(np.abs(ref).sum())
            result.spikes_total += int(count)
            result.per_output[name] = {"spike_mismatches": mism, "spikes": count}
            if not ref.any():
                result.silent.append(name)
            if mism:
                result.status = "disagree"
        else:
            nonzero = nonzero or bool(np.any(ref != 0))
            tol = RTOL * np.maximum(1.0, np.abs(ref))
            bad = int(np.sum(~(diff <= tol)))  # NaN is never within tolerance
            result.per_output[name] = {"max_abs_error": err, "out_of_tolerance": bad}
            if bad:
                result.status = "disagree"
        if non_finite:
            result.per_output[name]["non_finite"] = non_finite
            result.status = "disagree"
            result.detail = f"output {name!r} has {non_finite} NaN/inf values"
    if result.status == "agree":
        fired = result.spikes_total > 0
        if record is not None:
            prepared = prepare_graph(graph)
            fired = any(bool(np.any(record[n] != 0)) for n in _graph_spikers(prepared) if n in record)
            has_spikers = bool(_graph_spikers(prepared))
        else:
            has_spikers = bool(spiking & set(reference))
        if (has_spikers and not fired) or (not has_spikers and not nonzero):
            result.status = "vacuous"
            result.detail = (
                "no spike occurred in the reference, so spikes and resets were not compared: "
                "use an input that drives the network (more steps, a higher rate)"
                if has_spikers else "every compared trace is zero"
            )
    return result


PROBE = "__probe__"


def probed(prepared: PreparedGraph) -> tuple[PreparedGraph, dict[str, str]]:
    """The graph with an extra ``Output`` on every internal spiking node, and ``{probe: node}``.

    Running this graph on a backend exposes its hidden layers' spikes without any backend-specific
    recording hook; the probes do not change the schedule (an Output has no successors).
    """
    graph = prepared.graph
    direct = {b: a for a, b in graph.edges if isinstance(graph.nodes[b], nir.Output)}
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    probes: dict[str, str] = {}
    for name in _graph_spikers(prepared):
        if name in direct.values():
            continue
        probe = PROBE + name.replace(".", "_")
        while probe in nodes:
            probe += "_"
        nodes[probe] = nir.Output(output_type=np.array(prepared.shapes[name]))
        edges.append((name, probe))
        probes[probe] = name
    if not probes:
        return prepared, {}
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata), type_check=False)
    return prepare_graph(g, dt=prepared.dt), probes


def check(
    graph: GraphLike,
    backends: list[str] | None = None,
    inputs: dict[str, np.ndarray] | None = None,
    *,
    steps: int = 50,
    batch: int = 4,
    seed: int = 0,
    dt: float | None = None,
    device: Any = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[Agreement]:
    """Run the reference and each backend on the same input and report agreement per backend.

    :param backends: names to check; ``None`` means every registered backend except the reference.
    :param inputs: time-major inputs; random Bernoulli spikes (``steps``, ``batch``, ``seed``) when None.
    :param device: where the backends run; the reference (the oracle) always runs on the CPU. A backend
        that runs on the CPU only is reported as "refused" with the reason when ``device`` is not a CPU.
    :param options: per backend name, keyword options for its ``lower`` (e.g. ``{"lava": {"weight_bits": 11}}``).
    """
    from snnx.device import check_available, device_kind, parse_device

    target = parse_device(device)
    check_available(target)
    # One prepared graph serves the reference and every backend: lower() builds a model from it and
    # does not modify it.
    prepared = prepare(graph, dt=dt)
    if inputs is None:
        inputs = random_inputs(prepared, steps, batch, seed)
    record = simulate(prepared, inputs, record=True)
    reference = {k: record[k] for k in prepared.output_names}
    with_probes, probes = probed(prepared)
    spiking_nodes = spiking_outputs(prepared)  # the same for every backend; probes are added per backend
    names = backends if backends is not None else sorted(n for n in get_backends() if n != "reference")
    results = []
    for name in names:
        backend = get_backend(name)
        reasons = backend.refusals(prepared)
        if not reasons and device_kind(target) not in getattr(backend, "devices", ("cpu",)):
            reasons = [f"runs on the CPU only, not on --device {target}"]
        if reasons:
            status = "unavailable" if backend.missing_requirements() else "refused"
            results.append(Agreement(name, status, "; ".join(reasons), reasons=list(reasons)))
            continue
        try:
            outputs, used = _run_with_probes(
                backend, prepared, with_probes, probes, inputs, target, (options or {}).get(name, {})
            )
        except SnnxError as exc:
            results.append(Agreement(name, "error", str(exc)))
            continue
        expected = dict(reference)
        spiking = set(spiking_nodes)
        for probe, node in used.items():
            expected[probe] = record[node]
            spiking.add(probe)
        result = compare(prepared, expected, outputs, name, spiking=spiking, record=record)
        result.compared = sorted(used.get(k, k) for k in expected)
        result.silent = sorted(used.get(k, k) for k in result.silent)
        result.per_output = {used.get(k, k): v for k, v in result.per_output.items()}
        if probes and not used and result.status not in ("error",):
            note = "internal layers not compared (the backend cannot run the graph with extra outputs, nor their prefixes)"
            result.detail = f"{result.detail}; {note}" if result.detail else note
        if backend.approximate and result.status == "disagree":
            result.status = "approximate"
            result.detail = "approximates the contract by design (quantised); the counts are the measured agreement"
        results.append(result)
    return results


def prefix(prepared: PreparedGraph, node: str) -> PreparedGraph:
    """The part of the graph that ``node`` depends on, with one ``Output`` on ``node``.

    A node's trace depends only on its ancestors, so this graph gives the same trace; a backend that
    runs only chains (no fan-out for a probe) can still run the prefix of each hidden layer.
    """
    graph = prepared.graph
    preds: dict[str, list[str]] = {}
    for a, b in graph.edges:
        preds.setdefault(b, []).append(a)
    keep, frontier = {node}, [node]
    while frontier:
        for src in preds.get(frontier.pop(), []):
            if src not in keep:
                keep.add(src)
                frontier.append(src)
    out = PROBE + "out"
    nodes = {k: v for k, v in graph.nodes.items() if k in keep}
    nodes[out] = nir.Output(output_type=np.array(prepared.shapes[node]))
    edges = [(a, b) for a, b in graph.edges if a in keep and b in keep] + [(node, out)]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata), type_check=False)
    return prepare_graph(g, dt=prepared.dt)


def _run_with_probes(backend: Any, prepared: PreparedGraph, with_probes: PreparedGraph, probes: dict[str, str],
                     inputs: dict[str, np.ndarray], target: Any,
                     options: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Run the probed graph when the backend takes it, else the graph itself and the prefix of every
    probed node it takes (:func:`prefix`), on device ``target``, lowered with ``options``; returns the
    probes used."""
    from snnx.device import move

    if probes and not backend.refusals(with_probes):
        try:
            outputs = backend.run(move(backend.lower(with_probes, **options), target), inputs)
            if all(p in outputs for p in probes):
                return outputs, probes
        except Exception:  # noqa: BLE001 - a backend that cannot take extra outputs: try the prefixes
            pass
    outputs = backend.run(move(backend.lower(prepared, **options), target), inputs)
    used = {}
    for probe, node in probes.items():
        part = prefix(prepared, node)
        feeds = {k: v for k, v in inputs.items() if k in part.input_names}
        if backend.refusals(part) or set(feeds) != set(part.input_names):
            continue
        (out,) = part.output_names
        try:
            outputs[probe] = backend.run(move(backend.lower(part, **options), target), feeds)[out]
        except Exception:  # noqa: BLE001 - a prefix the backend cannot run: that layer is not compared (reported)
            continue
        used[probe] = node
    return outputs, used
