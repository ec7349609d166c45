"""The direct-training track: one NIR SNN lowered to each training backend and trained identically.

Each backend runs in its own spawned process, so that its peak memory can be measured cleanly (peak
resident set size during training and evaluation minus the resident size before training, from
``getrusage``/``/proc/self/statm``), and so that a backend that crashes becomes a row with the error
instead of taking the benchmark down. Identical for every backend: the initial weights (they are in
the NIR graph), the data order (a seeded ``torch.Generator``), Adam with the same learning rate, the
epochs, the batch size, the loss (cross-entropy on output spike counts, or on the mean readout
membrane for the ``pool`` architecture), and the trainable parameters (the synaptic weights and biases:
neuron parameters stay fixed, as some frameworks would otherwise train time constants and others not).
"""

from __future__ import annotations

import os
import resource
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The backends the track tries by default (plus any other registered backend named with --backends).
TRAINING_BACKENDS = ("snntorch", "norse", "spikingjelly", "lava-dl")
#: Training backends whose trained model is also deployed on Loihi 2 (exported, run on ``lava`` fixed_pt).
LOIHI_DEPLOYED = ("lava-dl",)


@dataclass
class DirectJob:
    """Everything a worker process needs (picklable)."""

    backend: str
    graph_path: str
    dataset: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    steps: int
    epochs: int
    batch_size: int
    lr: float
    seed: int
    readout: str
    stats_samples: int = 256
    threads: int = 1
    device: str = "cpu"
    #: Test samples run on Loihi 2 (``lava`` fixed_pt) after training, for :data:`LOIHI_DEPLOYED` backends.
    deploy_samples: int = 0


@dataclass
class DirectRow:
    """One backend's result (or why there is none)."""

    backend: str
    dataset: str
    status: str  # "ok", "refused", "unavailable", "error"
    detail: str = ""
    epochs: int = 0
    train_seconds_per_epoch: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    infer_ms_per_sample: float = 0.0
    test_accuracy: float = 0.0
    spikes_per_sample: float = 0.0
    sops_per_sample: float = 0.0
    macs_per_sample: float = 0.0
    firing_rate: float = 0.0
    energy_cmos45_nj: float = 0.0
    peak_memory_mb: float = 0.0
    trainable_params: int = 0
    device: str = "cpu"
    #: ``torch.cuda.max_memory_allocated`` during training and evaluation (0 off CUDA).
    peak_cuda_memory_mb: float = 0.0
    #: The seed of the initial weights and the data order (``snnx bench --seed``).
    seed: int = 0
    #: After deployment on Loihi 2 (``lava`` fixed_pt) of the first ``loihi_samples`` test samples: its
    #: accuracy, the trained (float) model's accuracy on the same samples, the fraction of samples
    #: classified alike and of output spikes equal; ``loihi_detail`` says why there is none (lava missing,
    #: refused, failed; empty on rows that are not deployed).
    loihi_samples: int = 0
    loihi_accuracy: float | None = None
    loihi_trained_accuracy: float | None = None
    loihi_agreement: float | None = None
    #: Fraction of equal output spikes over all steps, samples and output neurons (``None``: voltage readout).
    loihi_spike_agreement: float | None = None
    loihi_steps_per_second: float = 0.0
    loihi_detail: str = ""


def _rss_kb() -> float:
    """Current resident set size in KiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


def _synaptic_parameters(model: Any) -> list:
    """The weights and biases of the stateless layers (all parameters for models of other kinds)."""
    from snnx.torch.graph import GraphModule, TorchNeuron

    if isinstance(model, GraphModule):
        params = []
        for name in model.order:
            module = model.layer(name)
            if module is not None and not isinstance(module, TorchNeuron):
                params.extend(p for p in module.parameters() if p.is_floating_point())
        return params
    blocks = getattr(model, "blocks", None)
    if blocks is not None and all(hasattr(b, "synapse") or not list(b.parameters()) for b in blocks):
        # SLAYER blocks (lava-dl): the synapse holds the weights; neuron decays stay fixed.
        return [p for b in blocks if hasattr(b, "synapse") for p in b.synapse.parameters() if p.is_floating_point()]
    return [p for p in model.parameters() if p.is_floating_point()]


def time_major(model: Any) -> Any:
    """A callable taking and returning time-major ``(T, batch, ...)`` tensors for a lowered model.

    snnx's torch backends are time-major already; lava-dl's SLAYER network puts time last and says so
    with ``input_layout`` (see ``snnx.plugins.loihi.slayer``), so it is wrapped.
    """
    layout = getattr(model, "input_layout", None)
    if layout is None or getattr(model, "time_major", False):  # lava-dl models are time-major now
        return model

    def forward(x: Any) -> Any:
        y = model(layout(x.movedim(0, -1).contiguous()))
        return y.movedim(-1, 0)

    return forward


def _logits(out: Any, readout: str) -> Any:
    """Class scores from the model output ``(T, B, classes)``."""
    return out.sum(0) if readout == "spikes" else out.mean(0)


def _encode(x: Any, steps: int) -> Any:
    """Direct (analog current) coding: the image is presented at every step."""
    return x.unsqueeze(0).expand(steps, *x.shape)


def _sync(device: Any) -> None:
    """Wait for queued GPU work, so that wall-clock times include it (no-op on the CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_and_evaluate(job: DirectJob, progress: Any = None) -> DirectRow:
    """Lower, train and evaluate one backend in this process; errors are returned as a row."""
    row = DirectRow(job.backend, job.dataset, status="error", device=job.device, seed=job.seed)
    try:
        import torch

        import snnx
        from snnx.metrics import stats, trace_module

        torch.set_num_threads(job.threads)
        dev = torch.device(job.device)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        graph = snnx.load(job.graph_path)
        model = snnx.lower(graph, to=job.backend, device=job.device)
        model = model.float()
        params = _synaptic_parameters(model)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        row.trainable_params = int(sum(p.numel() for p in params))
        forward = time_major(model)
        torch.manual_seed(job.seed)
        optimiser = torch.optim.Adam(params, lr=job.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        # The whole (small) data set goes to the device once; the shuffling generator stays on the CPU
        # so that the data order is the same on every device.
        x_train = torch.as_tensor(job.x_train, dtype=torch.float32, device=dev)
        y_train = torch.as_tensor(job.y_train, device=dev)
        x_test = torch.as_tensor(job.x_test, dtype=torch.float32, device=dev)
        y_test = torch.as_tensor(job.y_test, device=dev)
        generator = torch.Generator().manual_seed(job.seed)
        base = _rss_kb()
        batches = (len(x_train) + job.batch_size - 1) // job.batch_size
        for epoch in range(job.epochs):
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            start = time.perf_counter()
            total = 0.0
            for i in range(batches):
                idx = order[i * job.batch_size : (i + 1) * job.batch_size]
                out = forward(_encode(x_train[idx], job.steps))
                loss = loss_fn(_logits(out, job.readout), y_train[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
                if progress is not None:
                    progress(("batch", job.backend, epoch, i + 1, batches))
            _sync(dev)
            row.epoch_seconds.append(time.perf_counter() - start)
            row.losses.append(total / len(x_train))
        row.epochs = job.epochs
        row.train_seconds_per_epoch = float(np.mean(row.epoch_seconds)) if row.epoch_seconds else 0.0

        model.eval()
        correct = 0
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(x_test), job.batch_size):
                out = forward(_encode(x_test[i : i + job.batch_size], job.steps))
                correct += int((_logits(out, job.readout).argmax(1) == y_test[i : i + job.batch_size]).sum())
        _sync(dev)
        row.infer_ms_per_sample = 1000 * (time.perf_counter() - start) / max(len(x_test), 1)
        row.test_accuracy = correct / max(len(x_test), 1)

        xs = _encode(x_test[: job.stats_samples], job.steps)
        with torch.no_grad():
            try:
                _, traces = trace_module(model, xs)
                s = stats(graph, traces=traces, spiking_inputs=False)
            except snnx.SnnxError:
                # Not a GraphModule: the trained model, exported, runs the same spikes on the reference.
                s = stats(snnx.raise_(model, backend=job.backend), xs.double().cpu().numpy(), spiking_inputs=False)
        row.spikes_per_sample = s.spikes
        row.sops_per_sample = s.sops
        row.macs_per_sample = s.macs
        row.firing_rate = s.rate
        row.energy_cmos45_nj = s.energy["cmos45"].snn_pj / 1000
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        row.peak_memory_mb = max(0.0, peak - base) / 1024
        if dev.type == "cuda":
            row.peak_cuda_memory_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        row.status = "ok"
        if job.backend in LOIHI_DEPLOYED and job.deploy_samples > 0:
            deploy_on_loihi(row, model, job)
    except Exception as exc:  # a backend's failure is a row, whatever it is
        row.detail = f"{type(exc).__name__}: {exc}"
        if os.environ.get("SNNX_BENCH_TRACE"):
            row.detail += "\n" + traceback.format_exc()
    return row


def deploy_on_loihi(row: DirectRow, model: Any, job: DirectJob) -> None:
    """Fill ``row``'s ``loihi_*`` fields: the trained ``model`` exported (``snnx.raise_``) and run on the
    first ``job.deploy_samples`` test samples on ``lava`` (fixed_pt), against the exported graph's
    reference simulation (the trained model in float64). Whatever stops it (lava missing, the export, a
    refusal, a Lava error) becomes ``loihi_detail``: the trained row stays ``ok``."""
    import snnx
    from snnx.bench.loihi import deploy, lava_missing

    missing = lava_missing()
    if missing is not None:
        row.loihi_detail = missing
        return
    n = min(job.deploy_samples, len(job.x_test))
    x = np.broadcast_to(np.asarray(job.x_test[:n], dtype=np.float64)[None], (job.steps, n, *job.x_test.shape[1:]))
    try:
        graph = snnx.raise_(model, backend=job.backend)
        result = deploy(graph, np.ascontiguousarray(x), np.asarray(job.y_test[:n]), readout=job.readout)
    except Exception as exc:  # a deployment failure is a reason in the row, whatever it is
        row.loihi_detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if os.environ.get("SNNX_BENCH_TRACE"):
            row.loihi_detail += "\n" + traceback.format_exc()
        return
    row.loihi_samples = n
    row.loihi_accuracy = result.loihi_accuracy
    row.loihi_trained_accuracy = result.reference_accuracy
    row.loihi_agreement = result.prediction_agreement
    row.loihi_spike_agreement = result.spike_agreement
    row.loihi_steps_per_second = result.steps_per_second_total


def _worker(job: DirectJob, queue: Any) -> None:
    import warnings

    # The frameworks' own deprecation notices (torch.jit.script, ...) are not the user's to act on.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Lava calls multiprocessing.set_start_method('fork') when imported, which raises in a spawned
    # process (its start method is already set). Only Lava starts processes here, so let it set its own.
    import multiprocessing.context

    multiprocessing.context._default_context._actual_context = None

    def progress(event: tuple) -> None:
        queue.put(event)

    row = train_and_evaluate(job, progress)
    queue.put(("row", row))


def run_isolated(job: DirectJob, on_event: Any = None, timeout: float | None = None) -> DirectRow:
    """Run :func:`train_and_evaluate` in a spawned process; a crash or timeout becomes an error row."""
    import multiprocessing as mp
    import queue as queue_mod

    from snnx.bench.parallel import start_spawned, stop_process_tree

    q = mp.get_context("spawn").Queue()
    deploys = job.backend in LOIHI_DEPLOYED and job.deploy_samples > 0
    # Lava's runtime forks its actors: a daemon worker may not have children. Joined or killed below.
    proc = start_spawned(_worker, (job, q), job.threads, daemon=not deploys)
    deadline = None if timeout is None else time.monotonic() + timeout
    row: DirectRow | None = None
    try:
        while row is None:
            try:
                event = q.get(timeout=0.5)
            except queue_mod.Empty:
                if not proc.is_alive():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stop_process_tree(proc)
                    return DirectRow(
                        job.backend, job.dataset, "error", f"timed out after {timeout:.0f} s", seed=job.seed
                    )
                continue
            if event[0] == "row":
                row = event[1]
            elif on_event is not None:
                on_event(event)
    except BaseException:  # Ctrl-C: the worker (and the Lava processes it started) must not outlive us
        stop_process_tree(proc)
        raise
    proc.join(timeout=30)
    if row is None:
        return DirectRow(
            job.backend, job.dataset, "error", f"worker process died (exit code {proc.exitcode})", seed=job.seed
        )
    return row


def availability(name: str, graph: Any, device: str = "cpu") -> DirectRow | None:
    """A row saying why backend ``name`` cannot run ``graph`` on ``device``, or ``None`` when it can."""
    from snnx.api import prepare
    from snnx.plugins import get_backends, plugin_errors

    backends = get_backends()
    if name not in backends:
        broken = "; ".join(f"{p}: {e}" for p, e in plugin_errors().items())
        detail = f"no backend {name!r} is registered" + (f" (plugins that failed to load: {broken})" if broken else "")
        return DirectRow(name, "", "unavailable", detail)
    backend = backends[name]
    reasons = backend.refusals(prepare(graph))
    if not reasons and device.split(":")[0] not in getattr(backend, "devices", ("cpu",)):
        reasons = [f"runs on the CPU only, not on --device {device}"]
    if reasons:
        status = "unavailable" if backend.missing_requirements() else "refused"
        return DirectRow(name, "", status, "; ".join(reasons), device=device)
    return None
