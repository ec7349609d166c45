"""Batched evaluation of a converted SNN on a torch backend, checked against the reference first.

``snnx convert --evaluate test.npz --backend snntorch --batch-size 256 --device cuda`` lowers the probed
graph once, moves it to the device and streams the test set through it in batches, reducing each batch
on the device to what the report needs (the readout's argmax at every window ``T``, spikes per layer per
step), so only a few numbers per batch come back to the host.

Before streaming, the first samples are run on both the numpy reference and the backend and compared
spike for spike (:class:`SampleCheck`). The verdict is "agree" only when spikes were compared and all of
them are equal: a check that compares nothing (no reference spikes, NaN in either output) says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import nir
import numpy as np

from snnx.errors import SnnxError

#: Samples the reference check runs (float64 numpy at the longest window: kept small on purpose).
CHECK_SAMPLES = 8


@dataclass
class SampleCheck:
    """How the backend's outputs compare with the reference on the first samples.

    :param status: ``"agree"`` (every compared spike equal), ``"disagree"``, ``"nothing compared"``
        (the reference has no spikes there, or an output holds NaN) or ``"error"``.
    :param samples: samples run on both; ``steps`` the time steps.
    :param spikes: reference spikes compared (every probe of every IF population).
    :param mismatches: spike entries that differ.
    :param readout_max_abs_error: largest readout-membrane difference (float32 vs float64 rounding).
    """

    status: str
    samples: int
    steps: int
    spikes: int = 0
    mismatches: int = 0
    readout_max_abs_error: float = 0.0
    detail: str = ""

    def line(self) -> str:
        """One line for the report."""
        head = f"sample check vs the reference (first {self.samples} samples, T = {self.steps}): "
        if self.status == "agree":
            return head + (
                f"spikes equal ({self.spikes:,} spikes compared, 0 differ; "
                f"readout max abs error {self.readout_max_abs_error:.2e})"
            )
        if self.status == "disagree":
            return head + f"DISAGREE: {self.mismatches:,} spike entries differ ({self.spikes:,} reference spikes)"
        return head + f"{self.status.upper()}: {self.detail}"


@dataclass
class Streamed:
    """What a streamed evaluation returns to :func:`snnx.convert.evaluate.evaluate`."""

    predictions: dict[int, np.ndarray]
    #: ``{layer: {T: spikes}}`` summed over the samples, both signs counted.
    spikes: dict[str, dict[int, float]]
    #: ``{layer: {T: -1 spikes}}`` summed over the samples (signed neurons; zero otherwise).
    negative: dict[str, dict[int, float]]
    first_inputs: np.ndarray
    first_outputs: dict[str, np.ndarray]
    seconds: float
    check: SampleCheck


def is_torch_backend(name: str | None) -> bool:
    """Whether backend ``name`` lowers to the shared torch executor (a ``GraphModule``)."""
    if name is None or name == "reference":
        return False
    from snnx.plugins import get_backend
    from snnx.torch.backend import TorchGraphBackend

    return isinstance(get_backend(name), TorchGraphBackend)


def check_sample(
    graph: nir.NIRGraph, run_backend: Callable[[np.ndarray], dict[str, np.ndarray]], xs: np.ndarray,
    input_name: str, readout: str, backend: str,
) -> SampleCheck:
    """Run ``xs`` (time-major) on the reference and with ``run_backend``; compare spikes exactly."""
    from snnx.api import compare, spiking_outputs
    from snnx.errors import SnnxError
    from snnx.ir.reference import simulate

    steps, samples = xs.shape[:2]
    try:
        ref = simulate(graph, {input_name: xs})
        got = run_backend(xs)
    except SnnxError as exc:
        return SampleCheck("error", samples, steps, detail=str(exc))
    nan = [f"reference {k}" for k, v in ref.items() if np.isnan(v).any()]
    nan += [f"{backend} {k}" for k, v in got.items() if np.isnan(np.asarray(v, dtype=np.float64)).any()]
    if nan:
        return SampleCheck("nothing compared", samples, steps, detail=f"NaN in {', '.join(sorted(nan))}")
    result = compare(graph, ref, got, backend)
    check = SampleCheck("agree", samples, steps, result.spikes_total, result.spike_mismatches)
    if readout in got:
        check.readout_max_abs_error = float(np.max(np.abs(np.asarray(got[readout]) - ref[readout]), initial=0.0))
    if result.status == "error":
        check.status, check.detail = "error", result.detail
    elif not spiking_outputs(graph):
        check.status, check.detail = "nothing compared", "the graph has no spiking outputs to compare"
    elif result.spikes_total == 0:
        check.status = "nothing compared"
        check.detail = "the reference emits no spikes on these samples, so equal spikes prove nothing"
    elif result.spike_mismatches:
        check.status = "disagree"
    return check


def stream_torch(
    graph: nir.NIRGraph,
    probes: dict[str, list[str]],
    input_name: str,
    readout: str,
    x: np.ndarray,
    steps: list[int],
    backend: str,
    *,
    device: str = "cpu",
    batch_size: int = 256,
    metrics_samples: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Streamed:
    """Check the first samples against the reference, then stream ``x`` through the backend in batches.

    :param graph: the converted graph with a probe ``Output`` on every IF population.
    :param probes: ``{layer: [probe output names]}``.
    :param x: samples ``(N, *shape)``, presented as an analog current at every step.
    :param steps: the windows ``T`` (sorted); the model runs ``steps[-1]`` steps once per batch.
    """
    import torch

    from snnx.device import move
    from snnx.plugins import get_backend

    impl = get_backend(backend)
    impl.check_accepts(graph)
    # float64: a converted net sums hundreds of analog currents per step, and float32 rounding flips
    # a few threshold crossings (16 of 228,473 spikes on the digits CNN), so the check would fail.
    try:
        native = impl.lower(graph, dtype="float64")
    except SnnxError:  # a third-party torch backend without a dtype option
        native = impl.lower(graph)
    model = move(native, device)
    t_max = steps[-1]

    def run_backend(xs: np.ndarray) -> dict[str, np.ndarray]:
        return impl.run(model, {input_name: xs})

    first = x[:CHECK_SAMPLES].astype(np.float64)
    xs_check = np.ascontiguousarray(np.broadcast_to(first[None], (t_max, *first.shape)))  # torch wants writable
    check = check_sample(graph, run_backend, xs_check, input_name, readout, backend)

    dev = torch.device(device)
    ref = next((t for t in model.parameters() if t.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    at = torch.as_tensor([t - 1 for t in steps], device=dev)
    preds: dict[int, list[np.ndarray]] = {t: [] for t in steps}
    per_step = {layer: torch.zeros(t_max, dtype=torch.float64, device=dev) for layer in probes}
    per_step_neg = {layer: torch.zeros(t_max, dtype=torch.float64, device=dev) for layer in probes}
    first_parts: dict[str, list[np.ndarray]] = {}
    m = min(metrics_samples, len(x))
    kept = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[i : i + batch_size], dtype=dtype, device=dev)
            out = model({input_name: xb.unsqueeze(0).expand(t_max, *xb.shape)})
            if not isinstance(out, dict):
                out = {model.output_names[0]: out}
            v = out[readout].reshape(t_max, len(xb), -1)
            chosen = v.index_select(0, at).argmax(-1).cpu().numpy()  # (len(steps), batch)
            for k, t in enumerate(steps):
                preds[t].append(chosen[k])
            for layer, names in probes.items():
                # both signs count as spikes, as in the reference path (a signed neuron's -1 is a spike)
                traces = [out[n].reshape(t_max, len(xb), -1) for n in names]
                per_step[layer] += sum(tr.abs().sum(dim=(1, 2)).double() for tr in traces)
                per_step_neg[layer] += sum((tr < 0).sum(dim=(1, 2)).double() for tr in traces)
            if kept < m:  # the first m samples' traces (over batches), for snnx.metrics (operations, energy)
                for n in (readout, *(p for names in probes.values() for p in names)):
                    first_parts.setdefault(n, []).append(out[n][:, : m - kept].detach().cpu().double().numpy())
                kept += min(m - kept, len(xb))
            if progress is not None:
                progress(min(i + batch_size, len(x)), len(x))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)  # the clock stops when the GPU is done, not when work is queued
    seconds = time.perf_counter() - start
    cum = {layer: np.cumsum(s.cpu().numpy()) for layer, s in per_step.items()}
    cum_neg = {layer: np.cumsum(s.cpu().numpy()) for layer, s in per_step_neg.items()}
    xm = x[:m].astype(np.float64)
    return Streamed(
        predictions={t: np.concatenate(p) for t, p in preds.items()},
        spikes={layer: {t: float(c[t - 1]) for t in steps} for layer, c in cum.items()},
        negative={layer: {t: float(c[t - 1]) for t in steps} for layer, c in cum_neg.items()},
        first_inputs=np.broadcast_to(xm[None], (t_max, *xm.shape)),
        first_outputs={n: np.concatenate(parts, axis=1) for n, parts in first_parts.items()},
        seconds=seconds,
        check=check,
    )


def throughput(samples: int, seconds: float) -> float:
    """Samples per second (0 when nothing was timed)."""
    return samples / seconds if seconds > 0 else 0.0


def describe_run(backend: str, device: str, batch_size: int | None, samples: int, seconds: float) -> str:
    """``SNN on snntorch (cpu, batch 256): 360 samples in 0.52 s = 692 samples/s``."""
    where = f"{device}, batch {batch_size}" if batch_size else device
    rate = throughput(samples, seconds)
    # Lava's simulation can take seconds per sample: below 10/s give significant digits, not "0".
    return f"SNN on {backend} ({where}): {samples} samples in {seconds:.2f} s = {rate:,.0f} samples/s" if rate >= 10 else (
        f"SNN on {backend} ({where}): {samples} samples in {seconds:.2f} s = {rate:.2g} samples/s"
    )


__all__ = ["CHECK_SAMPLES", "SampleCheck", "Streamed", "check_sample", "describe_run", "is_torch_backend", "stream_torch", "throughput"]
