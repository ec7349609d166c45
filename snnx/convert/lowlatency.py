"""Conversion tuned for a short window of ``T`` steps (``snnx convert --steps T``), from unlabelled data.

After ``T`` steps an IF population with threshold 1, reset "subtract" and ``v_init`` 0.5 that receives
the accumulated input ``Q`` (in units of its scale λ) has fired ``N = ceil(T·Q + 0.5) − 1`` times when
its input arrives evenly, and exactly that with signed spikes (``specs/semantics.md`` §4, version 2):
the SNN at ``T`` is then the ANN with every calibrated activation replaced by the clip-floor-shift
quantiser of QCFS (Bu et al., ICLR 2022)

    q_T(a; λ) = λ · clip(ceil(T·a/λ + 0.5) − 1, 0, T) / T.

The percentile scale that is right for ``T = 128`` is not right for ``T = 4``: with 5 levels a lower
λ resolves the bulk of the activations better and clips a few more. :func:`tune_scales` picks λ layer
by layer, in topological order, as the candidate whose quantised output (with every earlier layer
already quantised at its chosen λ) is closest in mean square to the float ANN's activation on the
calibration samples — the layer-wise threshold calibration of Li et al. (ICML 2021) and of the
"optimal threshold" line of work, done with onnxruntime on a copy of the ANN into which ``q_T`` is
inserted. No labels are used; the converted graph still runs at any ``T`` (only λ changed).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper

from snnx.convert.calibrate import batches, session

#: Candidate scales, as fractions of the largest activation seen on the calibration data.
FRACTIONS = tuple(np.round(np.arange(0.15, 1.0001, 0.025), 4))


def quantised_model(model: onnx.ModelProto, tensors: list[str], steps: int) -> onnx.ModelProto:
    """A copy of ``model`` with ``q_T`` applied to each tensor in ``tensors``.

    Each quantiser reads its λ from a new scalar input ``snnx_lambda_<i>``; the quantised tensor is
    output ``snnx_q_<i>`` and every consumer of the original tensor reads it instead.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    t_const = helper.make_tensor("snnx_T", TensorProto.FLOAT, [], [float(steps)])
    half = helper.make_tensor("snnx_half", TensorProto.FLOAT, [], [0.5])
    one = helper.make_tensor("snnx_one", TensorProto.FLOAT, [], [1.0])
    zero = helper.make_tensor("snnx_zero", TensorProto.FLOAT, [], [0.0])
    g.initializer.extend([t_const, half, one, zero])
    renamed = {t: f"snnx_q_{i}" for i, t in enumerate(tensors)}
    nodes = []
    for node in g.node:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
        nodes.append(node)
        for o in node.output:
            if o not in renamed:
                continue
            i = tensors.index(o)
            lam, p = f"snnx_lambda_{i}", f"snnx_p{i}_"
            # λ: a scalar, or one per channel ((C, 1, 1) or (features,)) for per-channel scales.
            g.input.append(helper.make_tensor_value_info(lam, TensorProto.FLOAT, None))
            nodes += [
                helper.make_node("Div", [o, lam], [p + "a"]),
                helper.make_node("Mul", [p + "a", "snnx_T"], [p + "b"]),
                helper.make_node("Add", [p + "b", "snnx_half"], [p + "c"]),
                helper.make_node("Ceil", [p + "c"], [p + "d"]),
                helper.make_node("Sub", [p + "d", "snnx_one"], [p + "e"]),
                helper.make_node("Clip", [p + "e", "snnx_zero", "snnx_T"], [p + "f"]),
                helper.make_node("Mul", [p + "f", lam], [p + "g"]),
                helper.make_node("Div", [p + "g", "snnx_T"], [p + "h"]),
                # on_i = 1 quantises, 0 passes the float value through (the layers not tuned yet).
                helper.make_node("Sub", [p + "h", o], [p + "i"]),
                helper.make_node("Mul", [p + "i", f"snnx_on_{i}"], [p + "j"]),
                helper.make_node("Add", [o, p + "j"], [renamed[o]]),
            ]
            g.input.append(helper.make_tensor_value_info(f"snnx_on_{i}", TensorProto.FLOAT, []))
    for o in g.output:
        if o.name in renamed:
            o.name = renamed[o.name]
    del g.node[:]
    g.node.extend(nodes)
    for i, t in enumerate(tensors):
        g.output.append(helper.make_tensor_value_info(f"snnx_q_{i}", TensorProto.FLOAT, None))
        g.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    return out


def _run(sess, input_name: str, batch: int | None, x: np.ndarray, feeds: dict[str, np.ndarray], outputs: list[str]):
    """Run the quantised model on ``x`` (chunked) with the λ inputs ``feeds``."""
    parts = [res for _n, res in batches(sess, input_name, x, batch, outputs, feeds)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(outputs))]


def tune_scales(
    model: onnx.ModelProto,
    input_name: str,
    batch: int | None,
    x: np.ndarray,
    tensors: list[str],
    scales: dict[str, float],
    steps: int,
    ceilings: dict[str, float] | None = None,
    objective: str = "output",
    per_channel: bool = False,
) -> tuple[dict[str, float | np.ndarray], list[str]]:
    """λ per calibrated tensor for a ``steps``-step window (greedy, layer by layer, least squares).

    :param tensors: the calibrated activations in topological order.
    :param scales: the percentile scales (also candidates; kept for layers that never fire).
    :param ceilings: per tensor, the largest meaningful λ (a ReLU6's 6).
    :param objective: ``"output"``: the error of the model's (first) output with this and every earlier
        layer quantised and the later ones exact; ``"layer"``: the error of the layer's own activation.
    :param per_channel: also try one λ per channel: per channel the fraction of the channel's largest
        activation whose quantised values are closest to the channel's own (with the layer's other
        channels and the earlier layers quantised), times a common factor; kept when it lowers the
        objective. The converter gives such a layer per-channel thresholds (``convert.ops.activations``).
    :returns: the tuned ``{tensor: λ}`` (a float, or an array with one λ per channel) and one note per
        layer (old → new λ, error reduction).
    """
    if not tensors:
        return dict(scales), []
    ceilings = ceilings or {}
    final = model.graph.output[0].name
    batched = _free_batch(model)
    if batched is not None:
        try:  # one run per chunk of samples instead of one per sample
            sess, reference = session(quantised_model(batched, tensors, steps)), session(batched, tensors)
            sess.run([final], {input_name: x[:2], **_feeds(tensors, scales, on=-1)})
            model, batch = batched, None
        except Exception:  # noqa: BLE001 - a shape baked into the graph: fall back to the pinned batch
            batched = None
    if batched is None:
        sess, reference = session(quantised_model(model, tensors, steps)), session(model, tensors)
    outs: list[list[np.ndarray]] = [[] for _ in (*tensors, final)]
    for _n, results in batches(reference, input_name, x, batch, [*tensors, final]):
        for k, r in enumerate(results):
            outs[k].append(r)
    floats = {t: np.concatenate(o).astype(np.float64) for t, o in zip((*tensors, final), outs, strict=True)}
    chosen: dict[str, float | np.ndarray] = dict(scales)
    notes = []
    for i, t in enumerate(tensors):
        a = floats[t]
        top = float(a.max())
        if top <= 0:
            continue
        cap = ceilings.get(t, np.inf)
        base = min(scales[t], cap)
        candidates: list[float | np.ndarray] = sorted({min(c, cap) for c in (*(top * f for f in FRACTIONS), base)})
        base_index = candidates.index(base)
        if per_channel and a.ndim in (2, 4) and a.shape[1] > 1:
            candidates += _channel_candidates(sess, input_name, batch, x, tensors, chosen, i, a, cap, base)
        target, fetch = (floats[final], final) if objective == "output" else (a, f"snnx_q_{i}")
        errors = []
        for lam in candidates:
            feeds = _feeds(tensors, {**chosen, t: lam}, on=i)
            (q,) = _run(sess, input_name, batch, x, feeds, [fetch])
            errors.append(float(np.mean((q.astype(np.float64).reshape(target.shape) - target) ** 2)))
        k = int(np.argmin(errors))
        best = candidates[k]
        chosen[t] = best
        shown = f"{best:.4g}" if np.ndim(best) == 0 else f"per channel {np.min(best):.3g}..{np.max(best):.3g}"
        notes.append(
            f"--steps {steps}: {t!r} λ {base:.4g} → {shown} "
            f"({objective} MSE {errors[base_index]:.3g} → {errors[k]:.3g})"
        )
    return chosen, notes


#: Common factors tried on the per-channel λ vector.
CHANNEL_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.25)


def _channel_candidates(sess, input_name, batch, x, tensors, chosen, i, a, cap, base) -> list[np.ndarray]:
    """Per-channel λ vectors for tensor ``i``: per channel the best fraction of the channel's maximum."""
    axes = (0, 2, 3) if a.ndim == 4 else (0,)
    top_c = a.max(axis=axes)
    top_c = np.where(top_c > 0, top_c, base)
    errs = []
    for f in FRACTIONS:
        lam = np.minimum(top_c * f, cap)
        lam_in = lam.reshape(-1, 1, 1) if a.ndim == 4 else lam
        (q,) = _run(sess, input_name, batch, x, _feeds(tensors, {**chosen, tensors[i]: lam_in}, on=i), [f"snnx_q_{i}"])
        errs.append(np.mean((q.astype(np.float64) - a) ** 2, axis=axes))
    best = np.asarray(FRACTIONS)[np.argmin(np.stack(errs), axis=0)]
    lam = np.minimum(top_c * best, cap)
    shaped = [np.minimum(lam * c, cap) for c in CHANNEL_FACTORS]
    return [v.reshape(-1, 1, 1) if a.ndim == 4 else v for v in shaped]


def _free_batch(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of a batch-pinned model whose batch axis (inputs, outputs, inner shapes) is symbolic."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1 or not inputs[0].type.tensor_type.shape.dim:
        return None
    inputs[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for o in (*graph.value_info, *graph.output):
        if o.type.tensor_type.shape.dim:
            o.type.tensor_type.shape.dim[0].dim_param = "N"
    return out


def _feeds(tensors: list[str], scales: dict[str, float], on: int) -> dict[str, np.ndarray]:
    """The λ inputs of the quantised model, quantising tensors ``0..on`` and passing the rest."""
    feeds = {f"snnx_lambda_{i}": np.asarray(scales[t], dtype=np.float32) for i, t in enumerate(tensors)}
    feeds.update({f"snnx_on_{i}": np.array(float(i <= on), dtype=np.float32) for i in range(len(tensors))})
    return feeds


def clip_ceilings(model: onnx.ModelProto) -> dict[str, float]:
    """``{Clip output: max}`` for constant-bounded Clips (a λ above the clip's max is never useful)."""
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "Clip":
            high = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if high is None:
                high = next((a.f for a in node.attribute if a.name == "max"), None)
            if high is not None:
                out[node.output[0]] = float(np.asarray(high).reshape(-1)[0])
    return out
