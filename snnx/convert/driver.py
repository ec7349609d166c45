"""The conversion driver: load → pin shapes → fold → calibrate → translate → emit → validate."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import onnx

from snnx.convert.ann_ops import count_ann_ops
from snnx.convert.calibrate import calibrate, check_samples, load_npz
from snnx.convert.context import ConversionContext, LayerInfo, Signal, sanitize
from snnx.convert.emit import CONVERSION_DT, build_graph
from snnx.convert.loader import default_opset, load_model, pin_input, resolve_input, tensor_shapes
from snnx.convert.rewrites import prepare
from snnx.errors import ConversionError, SnnxError, UnsupportedNodeError
from snnx.ir.semantics import reset_of, set_node_contract
from snnx.metrics.ann import store_ann
from snnx.registry import OnnxOpRegistrar

DEFAULT_PERCENTILE = 99.9

#: Why common activations are refused, for the error message.
_REASONS = {
    "Sigmoid": "is curved and positive everywhere (SiLU/Swish export as Sigmoid and Mul)",
    "Tanh": "is negative for negative inputs",
    "HardSigmoid": "has an offset (0.5 at 0)",
    "HardSwish": "is curved and negative on (-3, 0)",
    "Gelu": "is curved and negative for negative inputs",
    "Erf": "is curved (exported GELU uses it)",
    "Elu": "is negative for negative inputs",
    "Selu": "is negative for negative inputs",
    "Celu": "is negative for negative inputs",
    "LeakyRelu": "is negative for negative inputs",
    "PRelu": "is negative for negative inputs",
    "Softplus": "is curved and positive everywhere",
    "Mish": "is curved and negative for negative inputs",
}


@dataclass
class ConversionResult:
    """What :func:`convert` returns: the NIR graph and what was done to get it.

    :param graph: the spiking NIR graph (snnx contract metadata included, validated).
    :param input_name: name of the graph's Input node (``"input"``).
    :param input_shape: per-sample input shape.
    :param output_names: Output node names, one per ONNX output; each trace is the readout membrane
        ``v``, and ``v[t] / (t + 1)`` approximates the ANN's logits after ``t + 1`` steps.
    :param layers: the IF populations per ONNX activation (for spike counts).
    :param notes: what was dropped, folded or approximated.
    """

    graph: nir.NIRGraph
    input_name: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    onnx_input: str
    layers: list[LayerInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    op_counts: Counter = field(default_factory=Counter)
    folded_batchnorm: int = 0
    percentile: float = DEFAULT_PERCENTILE
    calib_samples: int = 0
    seconds: float = 0.0
    #: ``--steps``: the window the scales were tuned for (None: percentile scales only).
    steps: int | None = None
    #: ``--half-threshold-init``: ``--target loihi`` starts every reset-to-zero population (MaxPool trees
    #: excepted) from half its threshold (:func:`snnx.convert.targets.retarget`) instead of from 0.
    half_threshold_init: bool = False
    signed: bool = False
    #: Extra stages (fine-tuning, integer quantisation) with their wall-clock seconds.
    stages: dict[str, float] = field(default_factory=dict)
    #: ONNX op type per NIR node (what ``--finetune`` may train).
    origin: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A human summary (printed by ``snnx convert``)."""
        nodes = Counter(type(n).__name__ for n in self.graph.nodes.values())
        neurons = sum(int(np.prod(layer.shape)) * len(layer.neurons) for layer in self.layers)
        lines = [
            f"converted in {self.seconds:.2f} s: {sum(self.op_counts.values())} ONNX nodes "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.op_counts.items()))})",
            f"NIR graph: {len(self.graph.nodes)} nodes ({', '.join(f'{k} {v}' for k, v in sorted(nodes.items()))}), "
            f"{len(self.graph.edges)} edges, {neurons} IF neurons",
            f"input {self.input_name!r} {self.input_shape} (analog current every step); "
            f"readout {', '.join(repr(o) for o in self.output_names)}: integrator v, logits ≈ v[t]/(t+1); dt = {CONVERSION_DT:g}",
            f"calibration: {self.calib_samples} samples, percentile {self.percentile:g}"
            + (f", scales tuned for T = {self.steps} steps" if self.steps else "")
            + f"; {self.folded_batchnorm} BatchNormalization folded",
        ]
        if self.signed:
            lines.append("signed spikes: IF neurons also emit -1 to take back over-firing (contract version 2)")
        lines.extend(f"{stage}: {sec:.1f} s" for stage, sec in self.stages.items())
        if self.layers:
            # --target loihi rewrites every IF to reset to zero from zero state after the conversion.
            to_zero = any(
                isinstance(n, nir.IF) and reset_of(n) == "value" for n in self.graph.nodes.values()
            )
            integer = "integer" in self.stages
            lines.append(
                "layers (IF, reset to zero, v_init 0, "
                + ("integer thresholds, one per population):" if integer else "threshold 1):")
                if to_zero
                else "layers (IF, reset subtract, integer thresholds and v_init = ceil(threshold/2)):"
                if integer
                else "layers (IF, reset subtract, threshold 1, v_init 0.5):"
            )
            for layer in self.layers:
                scale = f"λ = {layer.scale:.4g}" if layer.scale is not None else ""
                pops = f" x{len(layer.neurons)}" if len(layer.neurons) > 1 else ""
                lines.append(
                    f"  {layer.onnx_node:<32} {layer.op_type:<8} {layer.shape!s:<16}{pops:<5} {scale}"
                )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _unsupported(nodes, entries: list, registry: OnnxOpRegistrar, opset: int) -> None:
    """Refuse the first node without a handler (``entries[i] is None``), naming the others' ops."""
    missing = [node for node, entry in zip(nodes, entries, strict=True) if entry is None]
    if not missing:
        return
    first = missing[0]
    more = (
        f" (and {len(missing) - 1} more: {', '.join(sorted({n.op_type for n in missing[1:]}))})"
        if len(missing) > 1
        else ""
    )
    supported = ", ".join(registry.op_types())
    plugin_hint = f"register a handler for {first.op_type!r} in a plugin (hook snnx_register_onnx_ops)"
    if first.op_type in _REASONS:
        why = f"an IF neuron's rate is a non-negative, piecewise-linear function of its input and {first.op_type} {_REASONS[first.op_type]}"
        options = f"replace it by ReLU (or Clip(0, max)) and retrain; or {plugin_hint}"
    else:
        why = "no handler is registered for it"
        options = f"re-export the model so that this step uses supported ops; or {plugin_hint}"
    msg = (
        f"ONNX node {first.name or first.output[0]!r} uses op {first.op_type!r} (opset {opset}), which snnx "
        f"convert cannot map to IF neurons: {why}{more}. Options: {options}. Supported ops: {supported}"
    )
    raise UnsupportedNodeError(msg)


def _lookup(registry: OnnxOpRegistrar, model: onnx.ModelProto, node: onnx.NodeProto, opset: int):
    """The handler for ``node``, resolved against the opset of the node's own domain."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    if domain:
        opset = next((int(e.version) for e in model.opset_import if e.domain == domain), 1)
    return registry.lookup(node.op_type, opset, domain)


def _samples(calib, per_sample: tuple[int, ...], input_name: str, limit: int | None) -> np.ndarray:
    if isinstance(calib, (str, os.PathLike)):
        x, _ = load_npz(calib, need_labels=False, what="--calib")
        what = f"--calib {str(calib)!r}"
    else:
        x, what = np.asarray(calib), "calibration data"
    x = check_samples(x, per_sample, input_name, what)
    return x[:limit] if limit else x


def convert(
    model: str | os.PathLike | onnx.ModelProto,
    calib: str | os.PathLike | np.ndarray | None = None,
    *,
    percentile: float = DEFAULT_PERCENTILE,
    input_shape: tuple[int, ...] | str | None = None,
    registry: OnnxOpRegistrar | None = None,
    calib_limit: int | None = None,
    steps: int | None = None,
    signed: bool = False,
    per_channel: bool = False,
) -> ConversionResult:
    """Convert a trained ONNX ANN into a rate-coded spiking NIR graph.

    The result runs on the reference simulator and every backend: present the input as a constant
    current for ``T`` steps; the readout's ``v[T-1] / T`` approximates the ANN's logits, and its argmax
    the ANN's class. See ``specs/conversion.md`` for the algorithm and every op's mapping.

    :param model: path to an ``.onnx`` file (opset >= 11) or a loaded ``onnx.ModelProto``.
    :param calib: calibration samples ``(N, *per_sample_input_shape)``, or an ``.npz`` with ``x``.
        Required when the model has activations (it always has, unless it is purely linear).
    :param percentile: per activation, the percentile of its positive values that one spike per
        step stands for (99.9 clips rare outliers for a better resolution of the rest).
    :param input_shape: concrete input shape (``(1, 3, 224, 224)`` or ``"1,3,224,224"``, batch
        optional) for models whose input has dynamic spatial axes.
    :param registry: op handlers; defaults to the registry filled by all plugins.
    :param calib_limit: use only the first ``calib_limit`` calibration samples.
    :param steps: tune every activation scale for a window of ``steps`` time steps (layer-wise least
        squares against the ANN's activations on the calibration samples; ``snnx/convert/lowlatency.py``).
        The graph still runs at any ``T``.
    :param signed: emit signed IF neurons (contract version 2), which take back over-firing with -1
        spikes; only backends with the ``signed_spikes`` capability (reference, snntorch, norse,
        spikingjelly) run them.
    :param per_channel: with ``steps``, also try one scale per channel (per-channel IF thresholds);
        kept per layer where it lowers the calibration error (helps conv nets, most the depthwise
        ReLU6 one; see ``specs/conversion.md`` §9.2).
    :raises ConversionError: a file or shape problem, or a pattern an op handler cannot translate.
    :raises UnsupportedNodeError: an op without a handler (named with node, op and options).
    """
    from snnx.convert.loader import parse_shape
    from snnx.ir.validate import validate

    start = time.perf_counter()
    proto = load_model(model)
    if registry is None:
        from snnx.plugins import get_onnx_ops

        registry = get_onnx_ops()
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    spec = resolve_input(proto, shape, batch=1)
    opset = default_opset(proto)
    # Checked after folding: shape arithmetic (Shape, Gather, Concat...) folds away and needs no handler.
    prepared, consts, folded_bn = prepare(pin_input(proto, spec))
    entries = [_lookup(registry, prepared, n, opset) for n in prepared.graph.node]
    _unsupported(prepared.graph.node, entries, registry, opset)
    shapes = tensor_shapes(prepared)
    per_sample = tuple(spec.shape[1:])

    to_calibrate = [
        n.output[0]
        for n, entry in zip(prepared.graph.node, entries, strict=True)
        if getattr(entry.handler, "snnx_calibrate", False)
    ]
    scales: dict[str, float] = {}
    channel_scales: dict[str, np.ndarray] = {}
    notes: list[str] = []
    n_calib = 0
    if to_calibrate:
        if calib is None:
            msg = (
                "conversion needs calibration data to set the firing scale of each activation: pass "
                "--calib data.npz (an array 'x' of typical inputs shaped (N, "
                f"{', '.join(map(str, per_sample))}), a few hundred samples are enough)"
            )
            raise ConversionError(msg)
        x = _samples(calib, per_sample, spec.name, calib_limit)
        n_calib = len(x)
        scales, notes = calibrate(prepared, spec.name, spec.shape[0], x, to_calibrate, percentile)
        if steps:
            tuned_scales, tuned = _tune_for_steps(prepared, spec, x, to_calibrate, scales, steps, per_channel)
            notes.extend(tuned)
            for name, lam in tuned_scales.items():
                if np.ndim(lam):  # one λ per channel: the largest is the signal's scale
                    channel_scales[name] = np.asarray(lam, dtype=np.float64).reshape(-1)
                    scales[name] = float(channel_scales[name].max())
                else:
                    scales[name] = float(lam)
    elif calib is not None:
        n_calib = len(_samples(calib, per_sample, spec.name, calib_limit))

    uses = Counter(i for n in prepared.graph.node for i in n.input if i)
    ctx = ConversionContext(
        constants=consts,
        shapes=shapes,
        scales=scales,
        opset=opset,
        graph_outputs=frozenset(o.name for o in prepared.graph.output),
        uses=dict(uses),
        signed=signed,
        channel_scales=channel_scales,
    )
    ctx.notes.extend(notes)
    input_node = ctx.add_node("input", nir.Input(input_type={"input": np.array(per_sample)}))
    ctx.set_signal(spec.name, Signal(((input_node, 1.0),), per_sample))
    for node, entry in zip(prepared.graph.node, entries, strict=True):
        ctx.current = node
        try:
            entry.handler(node, ctx)
        except SnnxError:
            raise
        except Exception as exc:
            msg = (
                f"{ctx.describe(node)}: the handler {entry.handler.__name__!r} from plugin {entry.plugin!r} "
                f"failed: {type(exc).__name__}: {exc}"
            )
            raise ConversionError(msg) from exc
    ctx.current = None

    output_names = []
    outputs = list(prepared.graph.output)
    for out in outputs:
        signal = ctx.signal(out.name)
        if len(signal.shape) != 1:
            ctx.note(f"output {out.name!r} has per-sample shape {signal.shape}; the readout keeps that shape")
        readout = nir.I(r=np.ones(signal.shape))
        rname = ctx.add_node(f"readout_{out.name}" if len(outputs) > 1 else "readout", readout)
        readout.r = np.full(signal.shape, ctx.feed([(signal, 1.0)], rname, absorb=True))
        set_node_contract(readout, v_init=0.0)
        oname = ctx.add_node(
            sanitize(out.name) if len(outputs) > 1 else "output",
            nir.Output(output_type={"output": np.array(signal.shape)}),
        )
        ctx.connect(rname, oname)
        output_names.append(oname)

    graph = build_graph(ctx)
    # The ANN's own count travels with the graph, so `snnx stats` can compare against it later.
    source = "" if isinstance(model, onnx.ModelProto) else Path(model).name
    try:
        store_ann(graph, count_ann_ops(proto, shape), model=source)
    except ConversionError as exc:  # a count is a report, not a reason to refuse a good conversion
        ctx.notes.append(f"the ANN's MACs were not counted ({exc}); snnx stats counts the graph's topology instead")
    validate(graph)
    return ConversionResult(
        graph=graph,
        input_name=input_node,
        input_shape=per_sample,
        output_names=output_names,
        onnx_input=spec.name,
        layers=ctx.layers,
        notes=ctx.notes,
        op_counts=Counter(n.op_type for n in proto.graph.node),
        folded_batchnorm=folded_bn,
        percentile=percentile,
        calib_samples=n_calib,
        seconds=time.perf_counter() - start,
        steps=steps,
        signed=signed,
        origin=dict(ctx.origin),
    )


def _tune_for_steps(prepared, spec, x, tensors, scales, steps, per_channel=False):
    """``--steps``: scales tuned for a ``steps``-step window (see :mod:`snnx.convert.lowlatency`)."""
    from snnx.convert.lowlatency import clip_ceilings, tune_scales

    if steps < 1:
        msg = f"--steps must be a positive number of time steps, got {steps}"
        raise ConversionError(msg)
    return tune_scales(
        prepared, spec.name, spec.shape[0], x, tensors, scales, steps, clip_ceilings(prepared), per_channel=per_channel
    )
