"""``snnx convert --steps T --target loihi``: fit each layer's scales to Loihi's reset-to-zero neuron.

Loihi's CUBA neuron resets to zero and starts from zero state, so a population driven by ``u``
thresholds per step fires ``⌊T/(⌊1/u⌋ + 1)⌋`` times in ``T`` steps: 5 levels in 8 steps (0, 1, 2, 4, 8),
spaced geometrically, where the converter's scales (``--steps``, fitted for reset subtract and
``v_init = θ/2``) assume 9 evenly spaced ones. :func:`fit_reset_to_zero` re-fits, layer by layer in
the schedule's order, three numbers per IF population against the ANN on the unlabelled ``--calib``
samples, with the exact reset-to-zero dynamics (the reference simulator on the graph as ``--target
loihi`` writes it):

- ``s``: the gain of the weights and bias feeding it (its threshold is ``1/s`` of the old one);
- ``g``: the gain of the weights it feeds (the rate it stands for downstream);
- ``β``: a constant extra input per step, in thresholds (a bias that centres the quantiser).

Each is chosen on a grid (coarse, then refined around the best point) to minimise, at ``T`` and ``2T``
alike (so that a fit for the short window does not cost the longer ones), the mean-square error of the
readout per step against the ANN's logits (:func:`readout_error`). A grid point is kept only where it
lowers that error. Minimising the fraction of samples whose class differs from the ANN's instead
(ties broken by that error) was better on the digits MLP and worse on a smaller one (measured:
``specs/conversion.md`` §8): with a few hundred samples that count is flat and noisy. Only weights and biases change: the graph keeps
its nodes, the target's contract and everything ``--integer`` needs.
"""

from __future__ import annotations

import copy
import time

import nir
import numpy as np

from snnx.convert.driver import ConversionResult
from snnx.convert.finetune import TRAINABLE_OPS, one_output
from snnx.convert.gainpaths import neighbours

WEIGHTED = (nir.Affine, nir.Conv2d, nir.Linear)
#: The coarse grids of ``s`` and ``g``, refined by ``±STEP`` around the best point, and of ``β``.
IN_GAINS = tuple(np.round(np.arange(0.7, 2.61, 0.3), 2))
OUT_GAINS = tuple(np.round(np.arange(0.5, 1.61, 0.3), 2))
STEP = 0.1
OFFSETS = (-0.1, -0.05, 0.03, 0.06, 0.1, 0.15)
#: At most this many calibration samples are simulated per grid point.
MAX_SAMPLES = 500


def _weighted_out(graph: nir.NIRGraph, name: str, succs: dict[str, list[str]], origin: dict[str, str]) -> list[str]:
    """The ANN's weighted nodes that ``name``'s spikes reach through stateless, unweighted nodes."""
    found, front, seen = [], list(succs[name]), set()
    while front:
        cur = front.pop()
        if cur in seen:
            continue
        seen.add(cur)
        node = graph.nodes[cur]
        if isinstance(node, WEIGHTED):
            if origin.get(cur) in TRAINABLE_OPS:
                found.append(cur)
        elif not isinstance(node, (nir.IF, nir.I, nir.Output)):
            front += succs[cur]
    return found


def _scaled(graph: nir.NIRGraph, inputs: list[str], outputs: list[str], name: str, s: float, g: float, beta: float):
    """A copy of ``graph`` with population ``name``'s input gain ``s``, output gain ``g``, offset ``beta``."""
    out = copy.deepcopy(graph)
    node = out.nodes[name]
    per_threshold = float(np.asarray(node.v_threshold).reshape(-1)[0]) / float(np.asarray(node.r).reshape(-1)[0])
    for w in inputs:
        wn = out.nodes[w]
        wn.weight = np.asarray(wn.weight, dtype=np.float64) * s
        if getattr(wn, "bias", None) is not None:
            # β is split over the inputs so that the population's own drive moves by β thresholds.
            bias = np.asarray(wn.bias, dtype=np.float64) * s + beta * per_threshold / len(inputs)
            wn.bias = np.broadcast_to(bias, (wn.weight.shape[0],)).copy()
    for w in outputs:
        out.nodes[w].weight = np.asarray(out.nodes[w].weight, dtype=np.float64) * g
    return out


def readout_error(y: np.ndarray, target: np.ndarray) -> float:
    """Relative mean-square error of readouts ``y`` against centred logits ``target``, at the best gain.

    ``y`` is centred per sample and takes its least-squares gain: argmax depends on neither.
    """
    y = y - y.mean(1, keepdims=True)
    gain = float(np.sum(y * target) / max(float(np.sum(y * y)), 1e-12))
    return float(np.mean((gain * y - target) ** 2) / np.mean(target**2))


def fit_reset_to_zero(result: ConversionResult, samples: np.ndarray, teacher, steps: int) -> dict[str, object]:
    """Fit ``result.graph``'s weights and biases (in place) to the reset-to-zero neuron at ``steps``.

    :param result: the converted (``--steps``) result, before ``--integer`` and the target's rewrite.
    :param samples: unlabelled calibration inputs, ``(N, *input shape)``.
    :param teacher: the ANN (ONNX path or proto) whose logits the readout is fitted to.
    :returns: ``{"seconds", "error_before", "error_after", "layers": {name: (s, g, β)}}``; the errors are
        :func:`readout_error` averaged over ``T`` and ``2T``.
    """
    from snnx.api import prepare
    from snnx.convert.evaluate import ann_logits
    from snnx.convert.targets import retarget
    from snnx.ir.reference import simulate

    # The fit matches one readout to the ANN's (first) logits; with several heads it would fit one and
    # leave the others wherever that takes them.
    one_output(
        result.graph, "--steps with --target loihi fits the readout to the ANN's logits and needs a model with one output",
        "convert without --steps (the output-gain fit takes several outputs) or export one output per model",
    )
    start = time.perf_counter()
    x = np.asarray(samples, dtype=np.float64)[:MAX_SAMPLES]
    target = ann_logits(teacher, x.astype(np.float32)).reshape(len(x), -1)
    target = target - target.mean(1, keepdims=True)
    windows = (steps, 2 * steps)
    xs = np.broadcast_to(x[None], (windows[-1], *x.shape))

    def error(graph: nir.NIRGraph) -> float:
        prepared = prepare(graph)
        (inp,) = prepared.input_names
        (out,) = prepared.output_names
        trace = simulate(prepared, {inp: xs}, record=True)[out]
        return sum(readout_error(trace[t - 1].reshape(len(x), -1) / t, target) for t in windows) / len(windows)

    # Searched on the target's own graph (reset to zero, zero state), written back by node name.
    graph = retarget(result, "loihi").graph
    preds, succs = neighbours(graph)
    best = before = error(graph)
    layers: dict[str, tuple[float, float, float]] = {}
    for name in prepare(graph).schedule.order:
        inputs = [p for p in preds.get(name, []) if isinstance(graph.nodes[p], WEIGHTED)]
        if not isinstance(graph.nodes[name], nir.IF) or not inputs:
            continue
        if any(result.origin.get(p) not in TRAINABLE_OPS for p in inputs):
            continue  # max-tree populations see whole spikes through fixed weights: their rule is exact
        outputs = _weighted_out(graph, name, succs, result.origin)
        choice = (1.0, 1.0, 0.0)
        coarse = [(s, g) for s in IN_GAINS for g in (OUT_GAINS if outputs else (1.0,))]
        for grid in (coarse, None):
            if grid is None:  # refine around the best coarse point
                s0, g0 = choice[:2]
                grid = [
                    (round(s0 + i * STEP, 2), round(g0 + j * STEP, 2) if outputs else 1.0)
                    for i in (-1, 0, 1) for j in ((-1, 0, 1) if outputs else (0,)) if (i, j) != (0, 0)
                ]
            for s, g in grid:
                e = error(_scaled(graph, inputs, outputs, name, s, g, 0.0))
                if e < best:
                    best, choice = e, (float(s), float(g), 0.0)
        graph = _scaled(graph, inputs, outputs, name, *choice)
        biased = all(getattr(graph.nodes[w], "bias", None) is not None for w in inputs)
        for beta in OFFSETS if biased else ():
            e = error(_scaled(graph, inputs, outputs, name, 1.0, 1.0, beta))
            if e < best:
                best, choice = e, (choice[0], choice[1], float(beta))
        graph = _scaled(graph, inputs, outputs, name, 1.0, 1.0, choice[2])
        layers[name] = choice
    for name, node in graph.nodes.items():
        if isinstance(node, WEIGHTED):
            kept = result.graph.nodes[name]
            kept.weight = np.asarray(node.weight, dtype=np.float64).copy()
            if getattr(node, "bias", None) is not None:
                kept.bias = np.asarray(node.bias, dtype=np.float64).copy()
    return {"seconds": time.perf_counter() - start, "error_before": before, "error_after": best, "layers": layers}
