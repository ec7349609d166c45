"""lava-dl → Loihi 2: a network trained with the ``lava-dl`` backend, exported and run on ``lava`` (fixed_pt).

:func:`deploy` is the measurement: a trained model exported to NIR (``snnx.raise_``) is lowered to
``lava`` (snnx's per-layer quantisation, a netx network) and run on Lava's bit-accurate Loihi 2 model;
its accuracy is compared with the reference simulation of the same graph (the float model that was
trained), with spike and prediction agreement. :func:`measure_speed` times a Lava backend with
lowering and Lava's compile separated from the steps.
:func:`conv_digits_graph`, :func:`rate_code` and :func:`train_spike_counts` are the small convolutional
SNN on scikit-learn digits that ``tests/test_lava_dl_conv.py`` and ``benchmarks/lava_dl_conv.py`` train.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

#: The backend a deployment runs on (Loihi 2 fixed point); the yardstick is the reference simulator.
DEPLOY_BACKEND = "lava"


@dataclass
class Deployment:
    """What running a trained model on Loihi 2 (Lava ``fixed_pt``) gave, against the reference."""

    samples: int
    steps: int
    reference_accuracy: float
    loihi_accuracy: float
    #: Fraction of equal output spikes over all steps, samples and neurons (``None`` for a voltage readout,
    #: whose quantised values are never equal to the float ones).
    spike_agreement: float | None
    #: Fraction of samples whose predicted class (argmax of the spike counts) is the reference's.
    prediction_agreement: float
    #: Fraction of samples whose Loihi class has the reference's highest count (counts tie often at small T).
    top_class_agreement: float
    lower_seconds: float
    run_seconds: float

    @property
    def steps_per_second(self) -> float:
        """Lava time steps per second of the run alone (lowering excluded; Lava's compile included)."""
        return self.samples * self.steps / self.run_seconds if self.run_seconds > 0 else 0.0

    @property
    def steps_per_second_total(self) -> float:
        """Lava time steps per second with the lowering (fold, quantisation) included."""
        total = self.lower_seconds + self.run_seconds
        return self.samples * self.steps / total if total > 0 else 0.0


def lava_missing() -> str | None:
    """Why the ``lava`` backend cannot run here (``None`` when it can)."""
    from snnx.plugins import get_backends

    backend = get_backends().get(DEPLOY_BACKEND)
    if backend is None:
        return f"no backend {DEPLOY_BACKEND!r} is registered"
    missing = backend.missing_requirements()
    return f"lava not installed ({', '.join(missing)}; snnx install lava)" if missing else None


def _logits(out: np.ndarray, readout: str) -> np.ndarray:
    return out.sum(0) if readout == "spikes" else out.mean(0)


def deploy(graph: nir.NIRGraph, x: np.ndarray, labels: np.ndarray, *, readout: str = "spikes") -> Deployment:
    """Run an exported graph on the reference and on ``lava`` (fixed_pt) and compare.

    :param graph: the trained network as NIR with the snnx contract (``snnx.raise_`` of a lava-dl model).
    :param x: time-major inputs ``(T, batch, *input shape)``; streamed as one Lava run of consecutive windows.
    :param labels: the class of each sample.
    :param readout: ``"spikes"`` (class = most output spikes) or ``"membrane"`` (largest mean output).
    """
    import snnx
    from snnx.api import prepare
    from snnx.ir.reference import simulate
    from snnx.plugins import get_backend

    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    reference = simulate(prepared, {inp: x})[out]
    start = time.perf_counter()
    model = snnx.lower(graph, to=DEPLOY_BACKEND)
    lowered = time.perf_counter()
    loihi = get_backend(DEPLOY_BACKEND).run(model, {inp: x})[out]
    done = time.perf_counter()
    ref_logits, loihi_logits = _logits(reference, readout), _logits(loihi, readout)
    ref_pred, loihi_pred = ref_logits.argmax(1), loihi_logits.argmax(1)
    top = ref_logits[np.arange(len(ref_pred)), loihi_pred] == ref_logits.max(1)
    return Deployment(
        samples=int(x.shape[1]), steps=int(x.shape[0]),
        reference_accuracy=float(np.mean(ref_pred == labels)),
        loihi_accuracy=float(np.mean(loihi_pred == labels)),
        spike_agreement=float(np.mean(loihi == reference)) if readout == "spikes" else None,
        prediction_agreement=float(np.mean(loihi_pred == ref_pred)),
        top_class_agreement=float(np.mean(top)),
        lower_seconds=lowered - start, run_seconds=done - lowered,
    )


def rate_code(images: np.ndarray, steps: int) -> np.ndarray:
    """Deterministic rate code, time-major: pixel ``p`` in [0, 1] spikes at step ``t`` when
    ``floor((t+1) p) > floor(t p)`` (``floor(steps p)`` evenly spread spikes)."""
    p = np.asarray(images, dtype=np.float64)[None]
    t = np.arange(steps).reshape(-1, *([1] * (p.ndim - 1)))
    return (np.floor((t + 1) * p) > np.floor(t * p)).astype(np.float64)


def conv_digits_graph(*, channels: int = 8, dt: float = 1e-3, seed: int = 1) -> nir.NIRGraph:
    """``Input(1, 8, 8) → Conv2d(1→channels, 3×3, pad 1) → LIF → SumPool2d(2) → Flatten → Affine(→10) → LIF``.

    ``dt/tau = 1/8`` and ``r = 8`` (so ``dt/tau · r = 1``): a decay Loihi represents exactly (512/4096).
    On Loihi the conv stays a netx conv layer; pool, flatten and affine compose into one dense layer.
    """
    rng = np.random.default_rng(seed)

    def lif(shape: tuple[int, ...]) -> nir.LIF:
        return nir.LIF(tau=np.full(shape, 8 * dt), r=np.full(shape, 8.0), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape), v_reset=np.zeros(shape))

    pooled = channels * 4 * 4
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
            "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.6, (channels, 1, 3, 3)), stride=1,
                               padding=1, dilation=1, groups=1, bias=np.zeros(channels)),
            "lif1": lif((channels, 8, 8)),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([channels, 4, 4])}, start_dim=0, end_dim=-1),
            "fc": nir.Affine(weight=rng.normal(0, pooled**-0.5, (10, pooled)), bias=np.zeros(10)),
            "lif2": lif((10,)),
            "output": nir.Output(output_type={"output": np.array([10])}),
        },
        edges=[("input", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"), ("flat", "fc"),
               ("fc", "lif2"), ("lif2", "output")],
    )
    graph.metadata = {"snnx": {"version": 1, "dt": dt}}
    return graph


def train_spike_counts(
    net: Any, x: np.ndarray, labels: np.ndarray, *, epochs: int, lr: float = 3e-3, batch_size: int = 64,
    seed: int = 0, logit_scale: float = 0.5,
) -> list[float]:
    """Adam on cross-entropy of the output spike counts (``logit_scale · counts``); returns each epoch's
    mean loss. ``net`` takes time-major ``(T, batch, ...)`` tensors, as every lowered snnx model does."""
    import torch

    torch.manual_seed(seed)
    data = torch.as_tensor(x, dtype=torch.float32)
    target = torch.as_tensor(labels)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(target), generator=torch.Generator().manual_seed(seed + epoch))
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(logit_scale * net(data[:, batch]).sum(0), target[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(target))
    return losses


@dataclass
class LavaSpeed:
    """How fast a Lava backend simulates a batch streamed as one run of consecutive windows."""

    backend: str
    samples: int
    steps: int
    #: ``snnx.lower`` (fold, quantisation; no Lava compile: that happens when the run starts).
    lower_seconds: float
    #: One run of the first sample alone: Lava's compile and process start-up plus ``steps`` steps.
    one_sample_seconds: float
    #: One run of the whole batch (``samples · steps`` steps plus the chain's latency).
    run_seconds: float

    @property
    def steps_per_second_total(self) -> float:
        """Time steps per second of the batch, lowering and Lava's compile included."""
        return self.samples * self.steps / (self.lower_seconds + self.run_seconds)

    @property
    def steps_per_second_marginal(self) -> float:
        """Time steps per second with lowering and compile excluded: the extra ``samples − 1`` windows
        over the extra time they took compared with the one-sample run."""
        extra = self.run_seconds - self.one_sample_seconds
        return (self.samples - 1) * self.steps / extra if extra > 0 else float("nan")


def measure_speed(graph: Any, x: np.ndarray, backend: str = DEPLOY_BACKEND) -> tuple[LavaSpeed, np.ndarray]:
    """Time ``backend`` (``lava`` or ``lava-float``) on time-major ``x``: lowering, a one-sample run
    (to separate Lava's compile and start-up from the steps) and the whole batch as one run.

    :returns: the timings and the batch's output ``(T, batch, *output shape)``.
    """
    import snnx
    from snnx.api import prepare
    from snnx.plugins import get_backend

    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    impl = get_backend(backend)
    start = time.perf_counter()
    model = snnx.lower(prepared, to=backend)
    lowered = time.perf_counter()
    impl.run(model, {inp: x[:, :1]})
    one = time.perf_counter()
    y = impl.run(model, {inp: x})[out]
    done = time.perf_counter()
    return LavaSpeed(backend, int(x.shape[1]), int(x.shape[0]), lowered - start, one - lowered, done - one), y
