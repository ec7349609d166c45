"""``snnx convert --calib ... --target loihi``: give each reset-to-zero population the rate gain it lost.

A reset-to-zero IF throws away the charge above its threshold at every spike, so it fires less than the
subtract-reset neuron the conversion's scales were computed for: for a constant input of ``u``
thresholds per step ``1/(⌊1/u⌋ + 1)`` instead of ``u``, and less still when its input arrives as
spikes (each step's jump over the threshold is lost). Measured on the residual digits net of
``benchmarks/lowlatency_models.py``: every hidden population fires 20–33 % below the ``target any``
graph's rate on the same input. A chain of such layers shrinks the signal by a product of these
factors while the (BatchNorm-folded) biases keep their size, and the Add of a residual block sums a
skip path shrunk once with a block path shrunk three times: the readout then follows the biases, and
the net fell to chance (13 %).

:func:`fit_rate_gains` undoes the shrinking population by population, in the schedule's order: it
runs the reset-to-zero graph (the reference simulator, exact dynamics) and the converted ``target
any`` graph on the unlabelled calibration samples and gives the population the least-squares gain
``α`` that maps its spike rate onto the ``target any`` graph's rate of the same neurons (the rate the
weights it feeds were scaled for). ``α`` multiplies what the population's spikes stand for downstream:
the weights it feeds, or, on a skip edge into another population, that population's input gain ``r``
(its other inputs divided by ``α``, so only the skip path changes). Max-tree populations keep their
exact whole-spike rule; a gain on the population feeding a tree goes to the weights the tree feeds
(the maximum commutes with a positive gain). Only ``r``, weights and biases change.
"""

from __future__ import annotations

import copy
import time

import nir
import numpy as np

from snnx.convert.driver import ConversionResult
from snnx.convert.finetune import TRAINABLE_OPS

WEIGHTED = (nir.Affine, nir.Conv2d, nir.Linear)
#: At most this many calibration samples are simulated.
MAX_SAMPLES = 300
#: The windows whose rates are compared without ``--steps`` (with it: ``T`` and ``2T``).
DEFAULT_WINDOWS = (32, 64)


def _neighbours(graph: nir.NIRGraph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
        succs[src].append(dst)
    return preds, succs


def _trainable_fed(graph: nir.NIRGraph, name: str, preds: dict[str, list[str]], origin: dict[str, str]) -> bool:
    """Whether IF ``name`` is a ReLU of the ANN: fed by at least one Conv/Gemm/MatMul weight."""
    return any(isinstance(graph.nodes[p], WEIGHTED) and origin.get(p) in TRAINABLE_OPS for p in preds[name])


def gain_plan(graph: nir.NIRGraph, name: str, origin: dict[str, str]) -> tuple[list[str], list[str], list[str]] | None:
    """Where population ``name``'s output gain goes: ``(weighted nodes, skip targets, their own weights)``.

    The walk passes stateless nodes and max trees (fixed weights, populations of origin MaxPool) and
    stops at the ANN's weighted nodes (their weights take the gain) and at populations reached without a
    weight (a skip edge: their ``r`` takes it, and their own weighted inputs its inverse). None when the
    gain cannot be moved there exactly: a weighted node also reads something that does not come from
    ``name``, or a skip target reads something other than ``name``'s path and its own weights.
    """
    preds, succs = _neighbours(graph)
    region, targets, skips, front = {name}, [], [], list(succs[name])
    while front:
        cur = front.pop()
        if cur in region or cur in targets or cur in skips:
            continue
        node = graph.nodes[cur]
        if isinstance(node, WEIGHTED) and origin.get(cur) in TRAINABLE_OPS:
            targets.append(cur)
        elif isinstance(node, nir.IF) and _trainable_fed(graph, cur, preds, origin):
            skips.append(cur)
        elif isinstance(node, (nir.I, nir.Output, nir.Input)):
            return None
        else:
            region.add(cur)
            front += succs[cur]
    for t in targets:
        if any(p not in region for p in preds[t]):
            return None
    divided = []
    for s in skips:
        for p in preds[s]:
            if p in region:
                continue
            # The skip target's other inputs are divided by the gain: they must be its own weights.
            if not isinstance(graph.nodes[p], WEIGHTED) or succs[p] != [s] or p in targets:
                return None
            divided.append(p)
    return targets, skips, divided


def apply_gain(graph: nir.NIRGraph, plan: tuple[list[str], list[str], list[str]], gain: float) -> None:
    """Make the spikes of the population ``plan`` was made for stand for ``gain`` times more (in place)."""
    targets, skips, divided = plan
    for t in targets:
        node = graph.nodes[t]
        node.weight = np.asarray(node.weight, dtype=np.float64) * gain
    for s in skips:
        node = graph.nodes[s]
        node.r = np.asarray(node.r, dtype=np.float64) * gain
    for p in divided:
        other = graph.nodes[p]
        other.weight = np.asarray(other.weight, dtype=np.float64) / gain
        if getattr(other, "bias", None) is not None:
            other.bias = np.asarray(other.bias, dtype=np.float64) / gain


def _rates(graph: nir.NIRGraph, x: np.ndarray, windows: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every node's spike count over each window, divided by the window: ``{name: (windows, N, ...)}``."""
    from snnx.api import prepare
    from snnx.ir.reference import simulate

    prepared = prepare(graph)
    (inp,) = prepared.input_names
    xs = np.broadcast_to(x[None], (max(windows), *x.shape))
    traces = simulate(prepared, {inp: xs}, record=True)
    out = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.IF):
            counts = np.cumsum(traces[name], axis=0)
            out[name] = np.stack([counts[t - 1] / t for t in windows])
    return out


def fit_rate_gains(
    result: ConversionResult, samples: np.ndarray, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> dict[str, object]:
    """Fit each reset-to-zero population's output gain (in place on ``result.graph``, which stays ``any``).

    :param result: the converted result, before ``--integer`` and the target's rewrite.
    :param samples: unlabelled calibration inputs, ``(N, *input shape)``.
    :param windows: the windows whose rates are compared (pooled in one least-squares fit).
    :returns: ``{"seconds", "gains": {population: α}, "silent": [populations that never fired],
        "skipped": [populations whose gain cannot be moved exactly]}``.
    """
    from snnx.api import prepare
    from snnx.convert.targets import retarget

    start = time.perf_counter()
    x = np.asarray(samples, dtype=np.float64)[:MAX_SAMPLES]
    teacher = _rates(result.graph, x, windows)
    graph = copy.deepcopy(retarget(result, "loihi").graph)
    preds, _ = _neighbours(graph)
    gains: dict[str, float] = {}
    silent, skipped = [], []
    for name in prepare(graph).schedule.order:
        node = graph.nodes[name]
        if not isinstance(node, nir.IF) or not _trainable_fed(graph, name, preds, result.origin):
            continue
        plan = gain_plan(graph, name, result.origin)
        if plan is None:
            skipped.append(name)
            continue
        rate = _rates(graph, x, windows)[name]
        power = float(np.sum(rate * rate))
        if power == 0.0:
            silent.append(name)  # nothing to compare: it keeps gain 1
            continue
        gain = float(np.sum(rate * teacher[name]) / power)
        if not np.isfinite(gain) or gain <= 0:
            skipped.append(name)
            continue
        apply_gain(graph, plan, gain)
        gains[name] = gain
    for name, node in graph.nodes.items():
        kept = result.graph.nodes[name]
        if isinstance(node, WEIGHTED):
            kept.weight = np.asarray(node.weight, dtype=np.float64).copy()
            if getattr(node, "bias", None) is not None:
                kept.bias = np.asarray(node.bias, dtype=np.float64).copy()
        elif isinstance(node, nir.IF):
            kept.r = np.asarray(node.r, dtype=np.float64).copy()
    return {"seconds": time.perf_counter() - start, "gains": gains, "silent": silent, "skipped": skipped}
