"""ANN vs SNN accuracy per time window, and spike counts per layer.

The SNN is run once for the longest window; the readout's membrane at step ``T-1`` gives the
prediction for window ``T`` (its argmax is the class), so every window costs one simulation. Spike
counts come from extra ``Output`` nodes ("probes") on every IF population, so any backend that can
run the graph reports them too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nir
import numpy as np
import onnx

from snnx.convert.batched import SampleCheck, describe_run, is_torch_backend, stream_torch, throughput
from snnx.convert.calibrate import batches, labelled_samples, session
from snnx.convert.driver import ConversionResult
from snnx.convert.loader import data_inputs, load_model
from snnx.errors import ConversionError
from snnx.ir.validate import validate
from snnx.metrics import Stats, stats

DEFAULT_TIMESTEPS = (4, 8, 16, 32, 64, 128)
#: Rough bytes of traces the reference simulator may hold per chunk of samples.
_TRACE_BUDGET = 3e8


@dataclass
class Evaluation:
    """ANN and SNN accuracy on labelled samples.

    :param ann_accuracy: onnxruntime accuracy of the original model.
    :param snn_accuracy: ``{T: accuracy}`` of the converted graph after ``T`` steps.
    :param agreement: ``{T: fraction}`` of samples where SNN and ANN pick the same class.
    :param spikes: ``{layer: {T: spikes per sample}}`` summed over the layer's IF populations.
    :param neurons: ``{layer: number of IF neurons}``.
    :param stats: ``{T: snnx.metrics.stats}`` on the first samples (synaptic operations, MACs, ANN
        MACs, energy per sample), empty when skipped.
    :param simulate_seconds: wall time of the simulation loop alone (no lowering, no check): the
        throughput is ``samples / simulate_seconds``.
    :param check: the torch backends' spike-for-spike check against the reference on the first samples.
    """

    ann_accuracy: float
    snn_accuracy: dict[int, float]
    agreement: dict[int, float]
    spikes: dict[str, dict[int, float]] = field(default_factory=dict)
    neurons: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    backend: str = "reference"
    seconds: float = 0.0
    stats: dict[int, Stats] = field(default_factory=dict)
    device: str = "cpu"
    batch_size: int | None = None
    simulate_seconds: float = 0.0
    check: SampleCheck | None = None

    @property
    def samples_per_second(self) -> float:
        """Throughput of the simulation loop."""
        return throughput(self.samples, self.simulate_seconds)
    #: ``{layer: {T: negative spikes per sample}}`` (signed neurons); ``spikes`` counts both signs.
    negative: dict[str, dict[int, float]] = field(default_factory=dict)

    def table(self) -> str:
        """Accuracy per T and spikes per sample (Markdown table plus a per-layer breakdown)."""
        steps = sorted(self.snn_accuracy)
        total = {t: sum(layer[t] for layer in self.spikes.values()) for t in steps}
        lines = [
            f"ANN accuracy (onnxruntime): {100 * self.ann_accuracy:.2f}% on {self.samples} samples",
            describe_run(self.backend, self.device, self.batch_size, self.samples, self.simulate_seconds)
            + f" ({self.seconds:.1f} s in all)",
        ]
        if self.check is not None:
            lines.append(self.check.line())
        lines += [
            "",
            "| T | SNN accuracy | ANN − SNN (pp) | agrees with ANN | spikes / sample |",
            "|---:|---:|---:|---:|---:|",
        ]
        for t in steps:
            lines.append(
                f"| {t} | {100 * self.snn_accuracy[t]:.2f}% | {100 * (self.ann_accuracy - self.snn_accuracy[t]):+.2f} "
                f"| {100 * self.agreement[t]:.1f}% | {f'{total[t]:.0f}' if self.spikes else 'n/a'} |"
            )
        if self.spikes and self.negative:
            from snnx.convert.lowlatency_report import signed_spike_table

            lines += ["", *signed_spike_table(self)]
        if self.spikes and steps:
            t = steps[-1]
            lines += ["", f"spikes per sample by layer at T = {t}:"]
            for name, per_t in self.spikes.items():
                n = self.neurons[name]
                lines.append(
                    f"  {name:<32} {per_t[t]:>10.0f}  ({per_t[t] / max(n, 1) / t:.3f} per neuron per step)"
                )
        if self.stats:
            first = self.stats[max(self.stats)]
            models = list(first.energy)
            lines += [
                "",
                f"operations per sample (snnx.metrics on the first {first.batch} samples; the ANN needs "
                f"{first.ann_macs:.4g} MACs, counted from {first.ann_source}):",
                "",
                "| T | spike-driven accumulates | MACs (analog input layer) | "
                + " | ".join(f"ANN/SNN energy ({m})" for m in models)
                + " |",
                "|---:|---:|---:|" + "---:|" * len(models),
            ]
            for t, st in sorted(self.stats.items()):
                ratios = " | ".join(f"{st.energy[m].ratio:.3g}" for m in models)
                lines.append(f"| {t} | {st.sops:.4g} | {st.macs:.4g} | {ratios} |")
            from snnx.convert.lowlatency_report import low_bit_ops_table

            lines += ["", *low_bit_ops_table(self)]
        return "\n".join(lines)


def _probe_graph(result: ConversionResult) -> tuple[nir.NIRGraph, dict[str, list[str]]]:
    nodes = dict(result.graph.nodes)
    edges = list(result.graph.edges)
    probes: dict[str, list[str]] = {}
    for layer in result.layers:
        names = []
        for neuron in layer.neurons:
            probe = f"probe_{neuron}"
            nodes[probe] = nir.Output(output_type={"output": np.array(layer.shape)})
            edges.append((neuron, probe))
            names.append(probe)
        probes[layer.onnx_node] = names
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(result.graph.metadata), type_check=False)
    return graph, probes


def _runner(graph: nir.NIRGraph, backend: str | None):
    if backend is None or backend == "reference":
        from snnx.ir.reference import simulate

        return lambda xs: simulate(graph, xs)
    from snnx.plugins import get_backend

    impl = get_backend(backend)
    impl.check_accepts(graph)
    model = impl.lower(graph)
    name = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    return lambda xs: impl.run(model, {name: xs})


def _refuses(backend: str, graph: nir.NIRGraph) -> bool:
    from snnx.plugins import get_backend

    return bool(get_backend(backend).refusals(graph))


def trace_chunk(graph: nir.NIRGraph, steps: int, budget: float) -> int:
    """Samples per simulation (1 to 256) so that float64 traces of every node over ``steps`` steps
    stay within about ``budget`` bytes."""
    per_sample = sum(int(np.prod(shape)) for shape in validate(graph).shapes.values())
    return int(max(1, min(256, budget // (8 * steps * max(per_sample, 1)))))


def ann_predictions(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Class predictions (argmax of the first output) of the ANN with onnxruntime."""
    inp = data_inputs(model)[0]
    dim0 = inp.type.tensor_type.shape.dim[0]
    fixed = int(dim0.dim_value) if dim0.HasField("dim_value") else None
    sess = session(model)
    first = sess.get_outputs()[0].name
    preds = [
        np.asarray(out[0]).reshape(n, -1).argmax(axis=1)
        for n, out in batches(sess, inp.name, x, fixed, [first])
    ]
    return np.concatenate(preds)


def ann_logits(model: str | os.PathLike | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The first output of the ANN (onnxruntime) for samples ``x``, one row per sample."""
    proto = load_model(model)
    inp = data_inputs(proto)[0]
    dim0 = inp.type.tensor_type.shape.dim[0]
    fixed = int(dim0.dim_value) if dim0.HasField("dim_value") else None
    sess = session(proto)
    first = sess.get_outputs()[0].name
    return np.concatenate(
        [np.asarray(out[0]).reshape(n, -1) for n, out in batches(sess, inp.name, x, fixed, [first])]
    )


def evaluate(
    result: ConversionResult,
    model: str | os.PathLike | onnx.ModelProto,
    data: str | os.PathLike | tuple[np.ndarray, np.ndarray],
    timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS,
    *,
    backend: str | None = None,
    limit: int | None = None,
    metrics_samples: int = 32,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
    device: str | None = None,
) -> Evaluation:
    """Compare the ANN (onnxruntime) with the converted SNN on labelled samples.

    :param result: what :func:`snnx.convert.convert` returned for ``model``.
    :param model: the original ONNX model (path or proto).
    :param data: an ``.npz`` with ``x`` and ``y``, or a tuple ``(x, y)``.
    :param timesteps: the time windows ``T`` to report.
    :param backend: run the SNN on this backend instead of the reference simulator.
    :param limit: evaluate only the first ``limit`` samples.
    :param metrics_samples: compute :func:`snnx.metrics.stats` (SOPs, ANN MACs, energy) for every
        window on this many samples of the first chunk (from its one run); 0 skips it.
    :param progress: called as ``progress(done, total)`` after each chunk of samples.
    :param batch_size: samples per simulation; default: as many as fit a trace budget (reference) or 256
        (torch backends). On a torch backend the set streams through the lowered model in batches on
        ``device``, after a spike-for-spike check against the reference on the first samples.
    :param device: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``mps``; torch backends only.
    """
    from snnx.device import resolve_device

    device = resolve_device(device, backend or "reference")
    if batch_size is not None and batch_size < 1:
        msg = f"--batch-size must be at least 1, got {batch_size}"
        raise ConversionError(msg)
    if not timesteps or min(timesteps) < 1:
        msg = f"--timesteps must be positive integers, got {list(timesteps)}"
        raise ConversionError(msg)
    x, y = labelled_samples(data, result.input_shape, result.onnx_input, "--evaluate", "evaluation data")
    if limit:
        x, y = x[:limit], y[:limit]
    proto = load_model(model)
    ann = ann_predictions(proto, x)

    start = time.perf_counter()
    steps = sorted(set(int(t) for t in timesteps))
    t_max = steps[-1]
    graph, probes = _probe_graph(result)
    if backend not in (None, "reference") and _refuses(backend, graph) and not _refuses(backend, result.graph):
        # A backend that runs one chain (lava, lava-float) cannot take the spike probes' fan-out:
        # evaluate accuracy without per-layer spike counts.
        graph, probes, metrics_samples = result.graph, {}, 0
    readout = result.output_names[0]
    n = len(x)
    if is_torch_backend(backend):
        streamed = stream_torch(
            graph, probes, result.input_name, readout, x, steps, backend, device=device,
            batch_size=batch_size or 256, metrics_samples=metrics_samples, progress=progress,
        )
        op_stats = {}
        if metrics_samples > 0 and streamed.first_outputs:
            op_stats = {
                t: _operation_stats(result, streamed.first_inputs, streamed.first_outputs, probes, metrics_samples, t)
                for t in steps
            }
        preds = streamed.predictions
        return Evaluation(
            ann_accuracy=float(np.mean(ann == y)),
            snn_accuracy={t: float(np.mean(preds[t] == y)) for t in steps},
            agreement={t: float(np.mean(preds[t] == ann)) for t in steps},
            spikes={layer: {t: s / n for t, s in per_t.items()} for layer, per_t in streamed.spikes.items()},
            negative={layer: {t: s / n for t, s in per_t.items()} for layer, per_t in streamed.negative.items()},
            neurons={layer.onnx_node: int(np.prod(layer.shape)) * len(layer.neurons) for layer in result.layers},
            samples=n,
            backend=backend,
            seconds=time.perf_counter() - start,
            stats=op_stats,
            device=device,
            batch_size=batch_size or 256,
            simulate_seconds=streamed.seconds,
            check=streamed.check,
        )
    run = _runner(graph, backend)
    chunk = batch_size or trace_chunk(graph, t_max, _TRACE_BUDGET)
    snn_pred = {t: [] for t in steps}
    spikes = {layer: {t: 0.0 for t in steps} for layer in probes}
    negative = {layer: {t: 0.0 for t in steps} for layer in probes}
    op_stats: dict[int, Stats] = {}
    sim_start = time.perf_counter()
    for start_i in range(0, len(x), chunk):
        xb = x[start_i : start_i + chunk].astype(np.float64)
        xs = np.broadcast_to(xb[None], (t_max, *xb.shape))
        out = run(xs)
        v = np.asarray(out[readout])
        for t in steps:
            snn_pred[t].append(v[t - 1].reshape(len(xb), -1).argmax(axis=1))
        for layer, names in probes.items():
            traces = [np.asarray(out[n]).reshape(t_max, len(xb), -1) for n in names]
            cum = np.cumsum(sum(np.abs(tr).sum(axis=(1, 2)) for tr in traces))
            cum_neg = np.cumsum(sum((tr < 0).sum(axis=(1, 2)) for tr in traces))
            for t in steps:
                spikes[layer][t] += float(cum[t - 1])
                negative[layer][t] += float(cum_neg[t - 1])
        if not op_stats and metrics_samples > 0:
            stats_start = time.perf_counter()
            op_stats = {t: _operation_stats(result, xs, out, probes, metrics_samples, t) for t in steps}
            sim_start += time.perf_counter() - stats_start  # metrics are not simulation: keep them off the clock
        if progress is not None:
            progress(start_i + len(xb), len(x))
    simulate_seconds = time.perf_counter() - sim_start
    preds = {t: np.concatenate(snn_pred[t]) for t in steps}
    return Evaluation(
        ann_accuracy=float(np.mean(ann == y)),
        snn_accuracy={t: float(np.mean(preds[t] == y)) for t in steps},
        agreement={t: float(np.mean(preds[t] == ann)) for t in steps},
        spikes={layer: {t: s / n for t, s in per_t.items()} for layer, per_t in spikes.items()},
        neurons={layer.onnx_node: int(np.prod(layer.shape)) * len(layer.neurons) for layer in result.layers},
        samples=n,
        backend=backend or "reference",
        seconds=time.perf_counter() - start,
        stats=op_stats,
        batch_size=chunk,
        simulate_seconds=simulate_seconds,
        negative={layer: {t: s / n for t, s in per_t.items()} for layer, per_t in negative.items()},
    )


def _operation_stats(
    result: ConversionResult,
    xs: np.ndarray,
    out: dict[str, np.ndarray],
    probes: dict[str, list[str]],
    m: int,
    steps: int,
) -> Stats:
    """snnx.metrics over the first ``steps`` steps of the traces the run already produced.

    The probes carry every IF's spikes and the outputs the readouts' membranes, which is every
    stateful node; metrics recomputes the stateless ones.
    """
    traces: dict[str, np.ndarray] = {result.input_name: xs[:steps, :m]}
    for names in probes.values():
        for probe in names:
            traces[probe.removeprefix("probe_")] = np.asarray(out[probe])[:steps, :m]
    for output in result.output_names:
        (readout,) = [src for src, dst in result.graph.edges if dst == output]
        traces[readout] = np.asarray(out[output])[:steps, :m]
    return stats(result.graph, traces=traces, spiking_inputs=False)
