"""The conversion track: ANNs trained here, exported to ONNX, converted, and swept over T and percentiles.

For each ANN and calibration percentile the converted graph is simulated once for the longest window
on the reference simulator with every node recorded; the prediction for window ``T`` is the argmax of
the readout at step ``T-1`` and the counts for window ``T`` are :func:`snnx.metrics.stats` of the traces
cut at ``T`` (the network is causal, so the first ``T`` steps of a long run are a run of ``T`` steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snnx.bench.data import Dataset
from snnx.bench.training import train_classifier

#: Rough bytes of recorded traces per chunk of test samples (float64, every node).
TRACE_BUDGET = 2e8


@dataclass
class ConversionPoint:
    """One (ANN, percentile, T) point of the sweep, per test sample."""

    steps: int
    snn_accuracy: float
    agreement: float
    # None where not measured (the Lava row: Lava reports no spike counts through the chain).
    spikes: float | None
    sops: float | None
    macs: float | None
    snn_energy_nj: float | None
    energy_ratio: float | None  # ANN energy / SNN energy (cmos45, fp32)
    loihi_energy_nj: float | None
    #: +1 and -1 spikes per spiking neuron per sample (signed neurons emit -1; specs/semantics.md §4).
    positive_per_neuron: float | None = 0.0
    negative_per_neuron: float | None = 0.0
    #: (SOPs + SNN MACs) / ANN MACs, and ANN/SNN operations with a MAC = 4 low-bit SOPs (Zou et al. 2024).
    sop_mac_ratio: float | None = 0.0
    low_bit_ratio: float | None = 0.0


@dataclass
class ConversionRow:
    """An ANN, converted at one percentile, evaluated at every T (or why it failed)."""

    dataset: str
    ann: str
    percentile: float
    status: str
    detail: str = ""
    ann_accuracy: float = 0.0
    ann_macs: float = 0.0
    ann_energy_nj: float = 0.0
    ann_train_seconds: float = 0.0
    convert_seconds: float = 0.0
    simulate_seconds: float = 0.0
    test_samples: int = 0
    points: list[ConversionPoint] = field(default_factory=list)
    #: Peak resident memory of the sweep's worker process above its size when the job started
    #: (``getrusage`` ``ru_maxrss``; the sweep runs the numpy reference, so there is no GPU figure).
    peak_memory_mb: float = 0.0
    #: The seed of the ANN's initial weights and data order (``snnx bench --seed``).
    seed: int = 0
    #: Where the SNN ran: ``reference`` (the sweep), or ``lava`` (:func:`lava_row`: ``--target loihi`` on
    #: Loihi 2 fixed point, a few test images, one T; ``detail`` says what was run).
    backend: str = "reference"


def train_ann(model: Any, ds: Dataset, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """Train a torch ANN with Adam and cross-entropy at a constant learning rate; returns the seconds it took."""
    start = time.perf_counter()
    train_classifier(model, ds.x_train, ds.y_train, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, cosine=False)
    return time.perf_counter() - start


def export_onnx(model: Any, input_shape: tuple[int, ...], path: Path) -> Path:
    """Export with the TorchScript exporter (the dynamo one needs onnxscript and gives the same graph here)."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, *input_shape),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


def sweep(
    onnx_path: Path,
    ds: Dataset,
    ann_name: str,
    percentiles: tuple[float, ...],
    timesteps: tuple[int, ...],
    calib_samples: int,
    on_chunk: Any = None,
) -> list[ConversionRow]:
    """Convert ``onnx_path`` at each percentile and evaluate it at every T on the test set.

    The ANN's test predictions do not depend on the percentile, so onnxruntime runs them once.

    :returns: one row per percentile, in order.
    """
    from snnx.convert.evaluate import ann_predictions
    from snnx.convert.loader import load_model
    from snnx.errors import SnnxError

    try:
        ann = ann_predictions(load_model(str(onnx_path)), ds.x_test)
    except SnnxError as exc:
        return [
            ConversionRow(ds.name, ann_name, pct, "error", str(exc), test_samples=len(ds.x_test))
            for pct in percentiles
        ]
    return [
        _sweep_percentile(onnx_path, ds, ann_name, pct, ann, timesteps, calib_samples, on_chunk)
        for pct in percentiles
    ]


def _sweep_percentile(
    onnx_path: Path,
    ds: Dataset,
    ann_name: str,
    percentile: float,
    ann: np.ndarray,
    timesteps: tuple[int, ...],
    calib_samples: int,
    on_chunk: Any,
) -> ConversionRow:
    """Convert at one ``percentile`` and evaluate at every T; ``ann`` are the ANN's test predictions."""
    import snnx
    from snnx.convert.evaluate import trace_chunk
    from snnx.errors import SnnxError
    from snnx.ir.reference import simulate
    from snnx.metrics import combine, stats

    row = ConversionRow(ds.name, ann_name, percentile, status="error", test_samples=len(ds.x_test))
    row.ann_accuracy = float(np.mean(ann == ds.y_test))
    try:
        start = time.perf_counter()
        result = snnx.convert(str(onnx_path), calib=ds.x_train[:calib_samples], percentile=percentile)
        row.convert_seconds = time.perf_counter() - start
    except SnnxError as exc:
        row.detail = str(exc)
        return row
    graph = result.graph
    steps = sorted(set(int(t) for t in timesteps))
    t_max = steps[-1]
    readout = result.output_names[0]
    chunk = trace_chunk(graph, t_max, TRACE_BUDGET)
    correct = {t: 0 for t in steps}
    agree = {t: 0 for t in steps}
    per_t: dict[int, list] = {t: [] for t in steps}
    start = time.perf_counter()
    x_test = ds.x_test.astype(np.float64)
    for i in range(0, len(x_test), chunk):
        xb = x_test[i : i + chunk]
        xs = np.broadcast_to(xb[None], (t_max, *xb.shape))
        traces = simulate(graph, {result.input_name: xs}, record=True)
        v = traces[readout]
        for t in steps:
            pred = v[t - 1].reshape(len(xb), -1).argmax(axis=1)
            correct[t] += int(np.sum(pred == ds.y_test[i : i + chunk]))
            agree[t] += int(np.sum(pred == ann[i : i + chunk]))
            cut = {k: tr[:t] for k, tr in traces.items()}
            per_t[t].append(stats(graph, traces=cut, spiking_inputs=False))
        if on_chunk is not None:
            on_chunk(len(xb))
    row.simulate_seconds = time.perf_counter() - start
    n = len(x_test)
    for t in steps:
        s = combine(per_t[t])
        cmos = s.energy["cmos45"]
        row.ann_macs = s.ann_macs
        row.ann_energy_nj = cmos.ann_pj / 1000
        row.points.append(
            ConversionPoint(
                steps=t,
                snn_accuracy=correct[t] / n,
                agreement=agree[t] / n,
                spikes=s.spikes,
                sops=s.sops,
                macs=s.macs,
                snn_energy_nj=cmos.snn_pj / 1000,
                energy_ratio=cmos.ratio,
                loihi_energy_nj=s.energy["loihi"].snn_pj / 1000,
                positive_per_neuron=s.positive_per_neuron,
                negative_per_neuron=s.negative_per_neuron,
                sop_mac_ratio=s.sop_mac_ratio,
                low_bit_ratio=s.low_bit_ratio,
            )
        )
    row.status = "ok"
    return row


def lava_row(
    onnx_path: Path, ds: Dataset, ann_name: str, percentile: float, steps: int, samples: int, calib_samples: int,
) -> ConversionRow:
    """The ANN converted with ``--target loihi`` and run on backend ``lava`` (Loihi 2, Lava's bit-accurate
    ``fixed_pt``) for ``steps`` steps on the first ``samples`` test images; also how often it picks the
    reference simulator's class for the same graph. Spike and operation counts are not measured there."""
    import snnx
    from snnx.api import prepare
    from snnx.convert.evaluate import ann_predictions
    from snnx.convert.loader import load_model
    from snnx.convert.rategain import fit_rate_gains
    from snnx.convert.targets import retarget
    from snnx.errors import SnnxError
    from snnx.ir.reference import simulate
    from snnx.plugins import get_backend

    x = ds.x_test[:samples].astype(np.float64)
    y = ds.y_test[:samples]
    what = f"--target loihi on lava (Loihi 2 fixed_pt), first {len(x)} test images, T={steps}"
    row = ConversionRow(ds.name, ann_name, percentile, "error", what, test_samples=len(x), backend="lava")
    backend = get_backend("lava")
    missing = backend.missing_requirements()
    if missing:
        row.status, row.detail = "unavailable", f"{what}: not installed ({backend.install_hint})"
        return row
    try:
        ann = ann_predictions(load_model(str(onnx_path)), x.astype(np.float32))
        start = time.perf_counter()
        converted = snnx.convert(str(onnx_path), calib=ds.x_train[:calib_samples], percentile=percentile)
        # What `snnx convert --calib ... --target loihi` writes: the output gains, then the rewrite.
        fit_rate_gains(converted, ds.x_train[:calib_samples])
        result = retarget(converted, "loihi")
        row.convert_seconds = time.perf_counter() - start
        graph = prepare(result.graph)
        reasons = backend.refusals(graph)
        if reasons:
            row.status, row.detail = "refused", f"{what}: " + "; ".join(reasons)
            return row
        xs = {result.input_name: np.broadcast_to(x[None], (steps, *x.shape))}
        out = result.output_names[0]
        start = time.perf_counter()
        v = backend.run(backend.lower(graph), xs)[out]
        row.simulate_seconds = time.perf_counter() - start
        ref = simulate(graph, xs)[out][steps - 1].reshape(len(x), -1).argmax(axis=1)
    except SnnxError as exc:
        row.detail = f"{what}: {exc}"
        return row
    pred = v[steps - 1].reshape(len(x), -1).argmax(axis=1)
    row.ann_accuracy = float(np.mean(ann == y))
    row.points.append(
        ConversionPoint(steps, float(np.mean(pred == y)), float(np.mean(pred == ann)), None, None, None, None, None, None)
    )
    # No timing in the detail: rows must compare equal across runs apart from the measured fields.
    row.detail = f"{what}; same class as the reference {np.mean(pred == ref):.0%}"
    row.status = "ok"
    return row


# -- jobs for worker processes (snnx bench --jobs N; see snnx.bench.parallel) ---------------------------
def train_export_job(
    kind: str, ds: Dataset, seed: int, epochs: int, batch_size: int, lr: float, path: str, progress: Any = None
) -> tuple[str, float]:
    """Build, train and export ANN ``kind`` in a worker; returns ``(onnx path, training seconds)``."""
    from snnx.bench.models import build_ann

    model = build_ann(kind, ds.shape, ds.classes, seed)
    seconds = train_ann(model, ds, epochs, batch_size, lr, seed)
    export_onnx(model, ds.shape, Path(path))
    return path, seconds


def sweep_job(
    onnx_path: str,
    ds: Dataset,
    ann_name: str,
    percentile: float,
    timesteps: tuple[int, ...],
    calib_samples: int,
    progress: Any = None,
) -> ConversionRow:
    """One (ANN, percentile) row of :func:`sweep` in a worker, with the worker's peak memory."""
    import onnxruntime  # noqa: F401  (loaded before the baseline: the figure is the sweep's, not the imports')

    import snnx.convert.evaluate  # noqa: F401
    from snnx.bench.parallel import peak_rss_kb, rss_kb

    base = rss_kb()
    (row,) = sweep(
        Path(onnx_path), ds, ann_name, (percentile,), timesteps, calib_samples,
        on_chunk=None if progress is None else (lambda n: progress(("chunk", n))),
    )
    row.peak_memory_mb = max(0.0, peak_rss_kb() - base) / 1024
    return row


def lava_job(
    onnx_path: str, ds: Dataset, ann_name: str, percentile: float, steps: int, samples: int, calib_samples: int,
    progress: Any = None,
) -> ConversionRow:
    """:func:`lava_row` in a worker."""
    return lava_row(Path(onnx_path), ds, ann_name, percentile, steps, samples, calib_samples)
