"""``snnx convert --calib ... --target loihi``: give each reset-to-zero population the rate gain it lost.

A reset-to-zero IF throws away the charge above its threshold at every spike, so it fires less than the
subtract-reset neuron the conversion's scales were computed for: for a constant input of ``u``
thresholds per step ``1/(⌊1/u⌋ + 1)`` instead of ``u``, and less still when its input arrives as
spikes (each step's jump over the threshold is lost). Measured on the residual digits net of
``benchmarks/lowlatency_models.py``: every hidden population fires 19–32 % below the ``target any``
graph's rate on the same input. A chain of such layers shrinks the signal by a product of these
factors while the (BatchNorm-folded) biases keep their size, and the Add of a residual block sums a
skip path shrunk once with a block path shrunk twice: the readout then follows the biases, and
the net fell to chance (13 %).

:func:`fit_rate_gains` undoes the shrinking population by population, in the schedule's order: it
runs the reset-to-zero graph (the reference simulator, exact dynamics) and the converted ``target
any`` graph on the unlabelled calibration samples and gives the population the least-squares gain
``α`` that maps its spike rate onto the ``target any`` graph's rate of the same neurons (the rate the
weights it feeds were scaled for). ``α`` multiplies what the population's spikes stand for downstream:
the weights it feeds, or, on a skip edge into another population, that population's input gain ``r``
(its other inputs divided by ``α``, so only the skip path changes). A gain is kept only where it brings
the readout closer to the ``target any`` graph's (:func:`snnx.convert.resetzero.readout_error`,
averaged over the windows): matching one population's rates does not by itself guarantee that. Max-tree populations keep their
exact whole-spike rule; a gain on the population feeding a tree goes to the weights the tree feeds
(the maximum commutes with a positive gain). Only ``r``, weights and biases change.
"""

from __future__ import annotations

import copy
import time

import nir
import numpy as np

from snnx.convert.driver import ConversionResult
from snnx.convert.gainpaths import gain_plan, neighbours, trainable_fed
from snnx.convert.resetzero import readout_error

#: At most this many calibration samples are simulated.
MAX_SAMPLES = 300
#: The windows whose rates are compared (T = 32 and 64 pooled, with or without ``--steps``).
DEFAULT_WINDOWS = (32, 64)
#: Rough bytes of the traces one chunk of samples records (float64, every node): the fit simulates
#: its samples in chunks of this size, as ``snnx bench`` does, and keeps only window-end counts.
TRACE_BUDGET = 2e8


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


def _run(graph: nir.NIRGraph, x: np.ndarray, windows: tuple[int, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every IF node's spike count over each window divided by the window, ``{name: (windows, N, ...)}``,
    and the readout per step at the end of each window, ``(windows, N, outputs' values)`` (several
    Outputs side by side).

    The samples are simulated in chunks bounded by :data:`TRACE_BUDGET`; of each chunk's traces only
    these window-end numbers are kept.
    """
    from snnx.api import prepare
    from snnx.convert.evaluate import trace_chunk
    from snnx.ir.reference import simulate

    prepared = prepare(graph)
    (inp,) = prepared.input_names
    ifs = [name for name, node in graph.nodes.items() if isinstance(node, nir.IF)]
    chunk = trace_chunk(graph, max(windows), TRACE_BUDGET)
    rates: dict[str, list[np.ndarray]] = {name: [] for name in ifs}
    readouts = []
    for i in range(0, len(x), chunk):
        xb = x[i : i + chunk]
        traces = simulate(prepared, {inp: np.broadcast_to(xb[None], (max(windows), *xb.shape))}, record=True)
        for name in ifs:
            trace = traces[name]
            rates[name].append(np.stack([trace[:t].sum(axis=0) / t for t in windows]))
        readouts.append(np.stack([
            np.concatenate([traces[out][t - 1].reshape(len(xb), -1) for out in prepared.output_names], axis=1) / t
            for t in windows
        ]))
        del traces
    return {name: np.concatenate(r, axis=1) for name, r in rates.items()}, np.concatenate(readouts, axis=1)


def _error(readout: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean([readout_error(y, t) for y, t in zip(readout, target, strict=True)]))


def fit_rate_gains(
    result: ConversionResult, samples: np.ndarray, windows: tuple[int, ...] = DEFAULT_WINDOWS
) -> dict[str, object]:
    """Fit each reset-to-zero population's output gain (in place on ``result.graph``, which stays ``any``).

    :param result: the converted result, before ``--integer`` and the target's rewrite.
    :param samples: unlabelled calibration inputs, ``(N, *input shape)``.
    :param windows: the windows whose rates are compared (pooled in one least-squares fit).
    :returns: ``{"seconds", "gains": {population: α}, "silent": [populations that never fired],
        "skipped": [populations whose gain cannot be moved exactly], "rejected": [populations whose gain
        raised the readout's error], "error_before", "error_after"}``; the errors are
        :func:`snnx.convert.resetzero.readout_error` of the readout against the ``target any`` graph's,
        averaged over the windows.
    """
    from snnx.api import prepare
    from snnx.convert.targets import retarget

    start = time.perf_counter()
    x = np.asarray(samples, dtype=np.float64)[:MAX_SAMPLES]
    teacher, wanted = _run(result.graph, x, windows)
    wanted = wanted - wanted.mean(-1, keepdims=True)
    graph = copy.deepcopy(retarget(result, "loihi").graph)
    preds, _ = neighbours(graph)
    rates, readout = _run(graph, x, windows)
    before = best = _error(readout, wanted)
    gains: dict[str, float] = {}
    kept: list[tuple[tuple[list[str], list[str], list[str]], float]] = []
    silent, skipped, rejected = [], [], []
    for name in prepare(graph).schedule.order:
        node = graph.nodes[name]
        if not isinstance(node, nir.IF) or not trainable_fed(graph, name, preds, result.origin):
            continue
        plan = gain_plan(graph, name, result.origin)
        if plan is None:
            skipped.append(name)
            continue
        rate = rates[name]
        power = float(np.sum(rate * rate))
        if power == 0.0:
            silent.append(name)  # nothing to compare: it keeps gain 1
            continue
        gain = float(np.sum(rate * teacher[name]) / power)
        if not np.isfinite(gain) or gain <= 0:
            skipped.append(name)
            continue
        trial = copy.deepcopy(graph)
        apply_gain(trial, plan, gain)
        trial_rates, trial_readout = _run(trial, x, windows)
        error = _error(trial_readout, wanted)
        # The gain matches one population's rates; what counts is the readout, so it is kept only where
        # the readout gets closer to the target-any graph's too.
        if error >= best:
            rejected.append(name)
            continue
        graph, rates, best = trial, trial_rates, error
        gains[name] = gain
        kept.append((plan, gain))
    # The gains found on the loihi graph are re-applied to the target-any graph rather than its node state
    # copied over: retarget's own loihi-only changes (the max trees' doubled r) must not leak into it.
    for plan, gain in kept:
        apply_gain(result.graph, plan, gain)
    return {
        "seconds": time.perf_counter() - start, "gains": gains, "silent": silent, "skipped": skipped,
        "rejected": rejected, "error_before": before, "error_after": best,
    }
