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
from snnx.ir.passes import input_names
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
    """Inputs from an ``.npz``: one array per Input name, or a single array for a one-input graph."""
    from snnx.errors import NirFileError

    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError as exc:
        msg = f"no such file: '{path}'"
        raise NirFileError(msg) from exc
    except (OSError, ValueError) as exc:
        msg = f"cannot read inputs from '{path}': not a valid .npz file ({exc})"
        raise NirFileError(msg) from exc
    names = input_names(graph.graph if isinstance(graph, PreparedGraph) else graph)
    if set(names) <= set(arrays):
        return {n: arrays[n] for n in names}
    if len(names) == 1 and len(arrays) == 1:
        return {names[0]: next(iter(arrays.values()))}
    msg = f"'{path}' holds arrays {sorted(arrays)}; the graph's inputs are {names} (name arrays after them)"
    raise ValidationError(msg)


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
    """How one backend's outputs compare with the reference's on the same input."""

    backend: str
    status: str  # "agree", "disagree", "approximate", "refused", "unavailable", "error"
    detail: str = ""
    spike_mismatches: int = 0
    spikes_total: int = 0
    max_abs_error: float = 0.0
    per_output: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("agree", "approximate", "refused", "unavailable")


def compare(
    graph: nir.NIRGraph | PreparedGraph, reference: dict[str, np.ndarray], other: dict[str, np.ndarray], backend: str
) -> Agreement:
    """Compare backend outputs with reference outputs by the rule of ``specs/semantics.md`` §8."""
    spiking = spiking_outputs(graph)
    result = Agreement(backend=backend, status="agree")
    for name, ref in reference.items():
        if name not in other:
            return Agreement(backend, "error", f"backend returned no output {name!r}")
        got = np.asarray(other[name], dtype=np.float64)
        if got.shape != ref.shape:
            return Agreement(backend, "error", f"output {name!r} has shape {got.shape}, expected {ref.shape}")
        err = float(np.max(np.abs(got - ref), initial=0.0))
        result.max_abs_error = max(result.max_abs_error, err)
        if name in spiking:
            mism = int(np.sum(got != ref))
            result.spike_mismatches += mism
            result.spikes_total += int(ref.sum())
            result.per_output[name] = {"spike_mismatches": mism, "spikes": float(ref.sum())}
            if mism:
                result.status = "disagree"
        else:
            tol = RTOL * np.maximum(1.0, np.abs(ref))
            bad = int(np.sum(np.abs(got - ref) > tol))
            result.per_output[name] = {"max_abs_error": err, "out_of_tolerance": bad}
            if bad:
                result.status = "disagree"
    return result


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
) -> list[Agreement]:
    """Run the reference and each backend on the same input and report agreement per backend.

    :param backends: names to check; ``None`` means every registered backend except the reference.
    :param inputs: time-major inputs; random Bernoulli spikes (``steps``, ``batch``, ``seed``) when None.
    :param device: where the backends run; the reference (the oracle) always runs on the CPU. A backend
        that runs on the CPU only is reported as "refused" with the reason when ``device`` is not a CPU.
    """
    from snnx.device import check_available, device_kind, move, parse_device

    target = parse_device(device)
    check_available(target)
    # One prepared graph serves the reference and every backend: lower() builds a model from it and
    # does not modify it.
    prepared = prepare(graph, dt=dt)
    if inputs is None:
        inputs = random_inputs(prepared, steps, batch, seed)
    reference = simulate(prepared, inputs)
    names = backends if backends is not None else sorted(n for n in get_backends() if n != "reference")
    results = []
    for name in names:
        backend = get_backend(name)
        reasons = backend.refusals(prepared)
        if not reasons and device_kind(target) not in getattr(backend, "devices", ("cpu",)):
            reasons = [f"runs on the CPU only, not on --device {target}"]
        if reasons:
            status = "unavailable" if backend.missing_requirements() else "refused"
            results.append(Agreement(name, status, "; ".join(reasons)))
            continue
        try:
            model = move(backend.lower(prepared), target)
            outputs = backend.run(model, inputs)
        except SnnxError as exc:
            results.append(Agreement(name, "error", str(exc)))
            continue
        result = compare(prepared, reference, outputs, name)
        if backend.approximate and result.status == "disagree":
            result.status = "approximate"
            result.detail = "approximates the contract by design (quantised); the counts are the measured agreement"
        results.append(result)
    return results
