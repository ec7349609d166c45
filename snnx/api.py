"""The public operations behind ``snnx``'s top-level functions and CLI commands."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError, ValidationError
from snnx.ir.io import load
from snnx.ir.passes import flatten, input_names
from snnx.ir.reference import simulate
from snnx.ir.semantics import dt_of, set_graph_contract
from snnx.ir.validate import validate
from snnx.plugins import get_backend, get_backends

GraphLike = nir.NIRGraph | str | os.PathLike

#: Node types whose output is a spike train (compared exactly by ``check``).
SPIKING_OUTPUT_TYPES = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)
RTOL = 1e-5


def as_graph(graph: GraphLike) -> nir.NIRGraph:
    """A graph object from a graph or a path to a ``.nir`` file."""
    return graph if isinstance(graph, nir.NIRGraph) else load(graph)


def prepare(graph: GraphLike, dt: float | None = None) -> nir.NIRGraph:
    """Validate, flatten and make the contract explicit: what every backend's ``lower`` receives."""
    g = as_graph(graph)
    validate(g, dt=dt)
    # flatten already returns a copy, so the contract is written into it rather than into another one.
    return set_graph_contract(flatten(g), dt=dt if dt is not None else dt_of(g))


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
    flat = prepare(graph, dt=dt)
    backend.check_accepts(flat)
    model = move(backend.lower(flat, **options), target)
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
    graph: nir.NIRGraph, steps: int, batch: int = 1, seed: int = 0, rate: float = 0.5
) -> dict[str, np.ndarray]:
    """Bernoulli spike trains (probability ``rate`` per step) for every Input of ``graph``."""
    shapes = validate(graph).shapes
    rng = np.random.default_rng(seed)
    return {n: (rng.random((steps, batch, *shapes[n])) < rate).astype(np.float64) for n in input_names(graph)}


def read_inputs(path: str | os.PathLike, graph: nir.NIRGraph) -> dict[str, np.ndarray]:
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
    names = input_names(graph)
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
    g = as_graph(graph)
    if not isinstance(inputs, dict):
        names = input_names(g)
        inputs = {names[0]: inputs} if len(names) == 1 else inputs
    if backend == "reference" and not options:
        return simulate(g, inputs, dt=dt)
    b = get_backend(backend)
    model = lower(g, to=backend, dt=dt, device=device, **options)
    return {k: np.asarray(v) for k, v in b.run(model, inputs).items()}


def spiking_outputs(graph: nir.NIRGraph) -> set[str]:
    """Output nodes fed only by spiking nodes: their traces are compared exactly."""
    flat = flatten(graph)
    result = set()
    for name, node in flat.nodes.items():
        if isinstance(node, nir.Output):
            srcs = [flat.nodes[a] for a, b in flat.edges if b == name]
            if srcs and all(isinstance(s, SPIKING_OUTPUT_TYPES) for s in srcs):
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
    graph: nir.NIRGraph, reference: dict[str, np.ndarray], other: dict[str, np.ndarray], backend: str
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
    g = as_graph(graph)
    if inputs is None:
        inputs = random_inputs(g, steps, batch, seed)
    reference = simulate(g, inputs, dt=dt)  # validates g
    names = backends if backends is not None else sorted(n for n in get_backends() if n != "reference")
    # One prepared graph serves every backend: lower() builds a model from it and does not modify it.
    flat = prepare(g, dt=dt)
    results = []
    for name in names:
        backend = get_backend(name)
        reasons = backend.refusals(flat)
        if not reasons and device_kind(target) not in getattr(backend, "devices", ("cpu",)):
            reasons = [f"runs on the CPU only, not on --device {target}"]
        if reasons:
            status = "unavailable" if backend.missing_requirements() else "refused"
            results.append(Agreement(name, status, "; ".join(reasons)))
            continue
        try:
            model = move(backend.lower(flat), target)
            outputs = backend.run(model, inputs)
        except SnnxError as exc:
            results.append(Agreement(name, "error", str(exc)))
            continue
        result = compare(g, reference, outputs, name)
        if backend.approximate and result.status == "disagree":
            result.status = "approximate"
            result.detail = "approximates the contract by design (quantised); the counts are the measured agreement"
        results.append(result)
    return results
