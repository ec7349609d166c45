"""``snnx convert --integer K``: integer weights, thresholds and initial states (all-integer inference).

The converted graph's IF populations have threshold 1 and gain ``r``; the weights feeding them are
floats. Scaling a neuron's membrane, threshold and input by the same positive factor ``θ`` leaves its
spikes unchanged, so per output channel ``c`` an integer threshold ``θ_c`` is chosen and the weights
``r·W[c]`` become ``round(θ_c·r·W[c])``, clipped to ``K``-bit signed levels ``[−L, L]``, ``L = 2^(K−1) − 1``
(``K = 2`` is ternary: 0, ±1). ``θ_c`` is the integer that minimises the rounding error
``‖r·W[c] − round(θ_c·r·W[c])/θ_c‖²`` (Zou et al. 2024 quantise to ternary/k-bit levels with integer
thresholds the same way). Biases become ``round(θ_c·r·b[c])``, ``v_init = ceil(θ_c/2)`` (for integer inputs
the same spikes as ``θ_c/2``) and ``r = 1``. The readout ``I`` gets one common gain (its argmax does
not depend on it). Spike trains stay 0/1 (±1 when signed), so every synaptic operation after the
analog input layer is an integer addition, and a graph whose numbers are all integer-valued floats
lowers to fixed-point hardware without a further quantisation step.

A target whose threshold is shared by a layer (Loihi: one ``vThMant`` per layer) asks for one threshold
per population (``per_channel=False``) and bounds the threshold and the bias mantissas (``limits``):
the threshold is then the best integer among those whose biases and itself fit.

Supported: each IF/I fed by Conv2d/Affine nodes that feed only it, by Scale nodes of integer scale,
and by other IF populations directly (max trees); AvgPool2d between spikes and a weighted node
becomes a SumPool2d with ``1/k²`` folded into the weights. Anything else is refused with the node.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import nir
import numpy as np

from snnx.errors import ConversionError
from snnx.ir.semantics import set_node_contract, v_init_of

WEIGHTED = (nir.Conv2d, nir.Affine, nir.Linear)
SPIKING = (nir.IF,)


def _adjacency(graph: nir.NIRGraph):
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for src, dst in graph.edges:
        preds[dst].append(src)
        succs[src].append(dst)
    return preds, succs


def _rows(w: np.ndarray) -> np.ndarray:
    """Weights as (output channel, everything else)."""
    return np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)


def best_threshold(
    rows: list[np.ndarray], levels: int, extra: list[float] = (), fits: Callable[[int], bool] | None = None
) -> int:
    """The integer threshold θ ≥ 1 minimising the relative rounding error of ``rows`` at ``levels``.

    :param rows: the float weights (times ``r``) feeding one output channel, threshold 1.
    :param extra: scalar per-spike weights (direct spike edges, Scale nodes) that must round too.
    :param fits: only thresholds for which it is true are candidates (a target's number formats);
        0 when none is.
    """
    w = np.concatenate([r.reshape(-1) for r in rows] + [np.asarray(extra, dtype=np.float64)])
    top = float(np.max(np.abs(w))) if w.size else 0.0
    if top == 0.0:
        return 1 if fits is None or fits(1) else 0
    hi = max(1, math.ceil(2 * levels / top) + 1)
    best, best_err = 0, np.inf
    for theta in range(1, hi + 1):
        if fits is not None and not fits(theta):
            continue
        q = np.clip(np.rint(w * theta), -levels, levels) / theta
        err = float(np.sum((w - q) ** 2))
        if err < best_err - 1e-15:
            best, best_err = theta, err
    return best


def _drive(rows: list[np.ndarray], bias: np.ndarray, extra: list[float], gain: float, levels: int) -> float:
    """The largest per-step input ``Σ|w| + |b|`` of a readout at ``gain`` (spike inputs of 1)."""
    total = sum(np.abs(np.clip(np.rint(r * gain), -levels, levels)).sum(axis=1) for r in rows)
    total = total + sum(abs(round(e * gain)) for e in extra) + float(np.max(np.abs(np.rint(bias * gain))))
    return float(np.max(total))


def _avgpools_to_sumpools(graph: nir.NIRGraph, preds, succs) -> None:
    """AvgPool2d → SumPool2d, the ``1/k²`` folded into the weighted node(s) it feeds (via Flatten)."""
    for name, node in list(graph.nodes.items()):
        if not isinstance(node, nir.AvgPool2d):
            continue
        k = int(np.prod(np.broadcast_to(node.kernel_size, (2,))))
        consumers, frontier = [], list(succs[name])
        while frontier:
            cur = frontier.pop()
            if isinstance(graph.nodes[cur], nir.Flatten):
                frontier += succs[cur]
            elif isinstance(graph.nodes[cur], WEIGHTED) and len(preds[cur]) == 1:
                consumers.append(cur)
            else:
                msg = f"--integer: AvgPool2d {name!r} feeds {cur!r}, not a weighted layer; its 1/{k} cannot be folded"
                raise ConversionError(msg)
        for c in consumers:
            graph.nodes[c].weight = np.asarray(graph.nodes[c].weight, dtype=np.float64) / k
        graph.nodes[name] = nir.SumPool2d(
            kernel_size=np.asarray(node.kernel_size), stride=np.asarray(node.stride), padding=np.asarray(node.padding)
        )


def integerise(
    graph: nir.NIRGraph, bits: int, *, per_channel: bool = True,
    limits: dict[str, tuple[float, float, float]] | None = None, even_thresholds: bool = False,
) -> dict[str, float]:
    """Make ``graph`` (a converted graph) all-integer in place, ``bits``-bit weights.

    :param per_channel: one integer threshold per output channel; False: one per population.
    :param limits: per IF/I population, the largest threshold, the largest bias magnitude and (for a
        readout) the largest per-step input ``Σ|w| + |b|`` the target holds
        (:func:`snnx.convert.targets.loihi_integer_limits`); populations not named are free.
    :param even_thresholds: every IF threshold even (Loihi 2's ATRLIF holds half of it in an integer
        register; ``v_init = ⌈θ/2⌉`` is then exactly half).
    :returns: statistics: the largest threshold, the largest bias magnitude, and the readout gain (the
        readout's ``v`` is ``gain`` times the float graph's).
    """
    if bits < 2:
        msg = f"--integer {bits}: weights need at least 2 bits (ternary)"
        raise ConversionError(msg)
    levels = 2 ** (bits - 1) - 1
    preds, succs = _adjacency(graph)
    _avgpools_to_sumpools(graph, preds, succs)
    stats = {"max_threshold": 0.0, "max_bias": 0.0, "readout_gain": 1.0}
    done: set[str] = set()
    # A copy: a spike edge that needs a gain gets a new Scale node below.
    for name, node in list(graph.nodes.items()):
        if not isinstance(node, (nir.IF, nir.I)):
            continue
        shape = np.shape(np.asarray(node.r))
        r = np.broadcast_to(np.asarray(node.r, dtype=np.float64), shape)
        r0 = float(r.reshape(-1)[0])
        if not np.allclose(r, r0):
            msg = f"--integer: {name!r} has a per-neuron gain r; only a uniform r is supported"
            raise ConversionError(msg)
        th0, frac = 1.0, 0.0
        if isinstance(node, nir.IF):
            th = np.asarray(node.v_threshold, dtype=np.float64)
            th0 = float(th.reshape(-1)[0])
            if not np.allclose(th, th0) or th0 <= 0:
                msg = (
                    f"--integer: {name!r} has per-neuron thresholds (--per-channel); integer conversion "
                    "needs one threshold per population, convert without --per-channel"
                )
                raise ConversionError(msg)
            frac = float(np.broadcast_to(v_init_of(node), shape).reshape(-1)[0]) / th0
            r0 = r0 / th0  # threshold 1 in units of the old threshold
        weighted, scales, direct = [], [], []
        for src in preds[name]:
            s = graph.nodes[src]
            if isinstance(s, WEIGHTED):
                if succs[src] != [name]:
                    msg = f"--integer: weighted node {src!r} feeds several nodes {succs[src]}; it must feed one neuron population"
                    raise ConversionError(msg)
                weighted.append(src)
            elif isinstance(s, nir.Scale):
                scales.append(src)
            elif isinstance(s, SPIKING):
                direct.append(src)
            else:
                msg = f"--integer: {name!r} is fed by {src!r} ({type(s).__name__}); only Conv2d/Affine, Scale and spike edges are supported"
                raise ConversionError(msg)
        extra = [r0] * bool(direct) + [r0 * float(np.asarray(graph.nodes[s].scale).reshape(-1)[0]) for s in scales]
        for s in scales:
            sc = np.asarray(graph.nodes[s].scale, dtype=np.float64)
            if not np.allclose(sc, sc.reshape(-1)[0]):
                msg = f"--integer: Scale {s!r} feeding {name!r} is not uniform"
                raise ConversionError(msg)
        channels = {np.asarray(graph.nodes[w].weight).shape[0] for w in weighted}
        if len(channels) > 1:
            msg = f"--integer: the weighted inputs of {name!r} disagree on the channel count {sorted(channels)}"
            raise ConversionError(msg)
        n_ch = channels.pop() if channels else 1
        bias = np.concatenate([
            r0 * np.asarray(graph.nodes[w].bias, dtype=np.float64).reshape(-1)
            for w in weighted if getattr(graph.nodes[w], "bias", None) is not None
        ] + [np.zeros(1)])
        max_th, max_bias, max_drive = (limits or {}).get(name, (math.inf, math.inf, math.inf))
        bias_top = float(np.max(np.abs(bias)))

        even = even_thresholds and isinstance(node, nir.IF)

        def fits(theta: int, *, max_th=max_th, max_bias=max_bias, bias=bias, even=even) -> bool:
            return (
                theta <= max_th and float(np.max(np.abs(np.rint(bias * theta)))) <= max_bias
                and not (even and theta % 2)
            )

        if isinstance(node, nir.I):
            # One gain for the whole readout: argmax is invariant to it, not to per-class gains.
            rows = [r0 * _rows(graph.nodes[w].weight) for w in weighted]
            top = max([float(np.max(np.abs(x))) for x in rows] + [abs(e) for e in extra] + [1e-12])
            gain = min(levels / top, max_bias / bias_top if bias_top else math.inf)
            while gain > 0 and _drive(rows, bias, extra, gain, levels) > max_drive:
                gain *= 0.99
            if not any(np.any(np.rint(x * gain) != 0) for x in rows):
                msg = (
                    f"readout {name!r}: no integer gain keeps its per-step input within {max_drive:g} and leaves "
                    "a non-zero weight; convert it without --integer or with --target any"
                )
                raise ConversionError(msg, node=name)
            theta = np.full(n_ch, gain)
            stats["readout_gain"] = float(theta[0])
        else:
            one = not per_channel or direct or scales
            theta = np.array([
                best_threshold([r0 * _rows(graph.nodes[w].weight)[c] for w in weighted], levels, extra, fits)
                for c in range(n_ch)
            ], dtype=np.float64)
            if one and len(set(theta.tolist())) > 1:
                # Spike edges and Scale nodes carry one weight for every channel, and some targets
                # share one threshold per layer: one threshold for the population.
                theta = np.full(n_ch, float(best_threshold(
                    [r0 * _rows(graph.nodes[w].weight) for w in weighted], levels, extra, fits)))
            if np.any(theta == 0):
                msg = (
                    f"--integer: no integer threshold of {name!r} keeps its biases within {max_bias:g} and itself "
                    f"within {max_th:g} (the target's number formats): its biases are too large against its "
                    "weights; retrain with smaller biases, or convert for --target any"
                )
                raise ConversionError(msg)
        for w in weighted:
            wn = graph.nodes[w]
            wt = np.asarray(wn.weight, dtype=np.float64)
            g = (r0 * theta).reshape(-1, *([1] * (wt.ndim - 1)))
            wn.weight = np.clip(np.rint(wt * g), -levels, levels)
            if getattr(wn, "bias", None) is not None:
                wn.bias = np.rint(np.asarray(wn.bias, dtype=np.float64) * r0 * theta)
                stats["max_bias"] = max(stats["max_bias"], float(np.max(np.abs(wn.bias), initial=0.0)))
        if direct or scales:
            t0 = float(theta[0])
            for s in scales:
                sn = graph.nodes[s]
                sn.scale = np.rint(np.asarray(sn.scale, dtype=np.float64) * r0 * t0)
            if direct and not np.isclose(r0 * t0, 1.0):
                for d in direct:
                    gain = float(np.rint(r0 * t0))
                    scale = f"{d}_to_{name}_int"
                    graph.nodes[scale] = nir.Scale(scale=np.full(np.shape(np.asarray(graph.nodes[d].v_threshold)), gain))
                    graph.edges = [e for e in graph.edges if e != (d, name)] + [(d, scale), (scale, name)]
        per_neuron = theta.reshape(-1, *([1] * (len(shape) - 1))) if len(shape) > 1 else theta
        node.r = np.ones(shape)
        if isinstance(node, nir.IF):
            node.v_threshold = np.broadcast_to(per_neuron, shape).astype(np.float64).copy()
            set_node_contract(node, v_init=np.ceil(node.v_threshold * frac))
            stats["max_threshold"] = max(stats["max_threshold"], float(theta.max()))
        done.add(name)
    for name, node in graph.nodes.items():
        if isinstance(node, WEIGHTED) and not np.allclose(np.asarray(node.weight), np.rint(np.asarray(node.weight))):
            msg = f"--integer: weighted node {name!r} does not feed a neuron population and has non-integer weights"
            raise ConversionError(msg)
    return stats
