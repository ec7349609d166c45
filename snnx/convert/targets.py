"""Conversion targets (``snnx convert --target``): adapt a converted graph to a deployment's neuron.

``any`` (the default) keeps the conversion's IF neurons with reset "subtract" and ``v_init`` at half
the threshold, which any exact backend runs. ``loihi`` makes the graph one that Loihi's CUBA neuron
(backend ``lava``, fixed point) runs: reset to zero (Loihi has no subtract reset) and zero initial
state (Loihi's state starts at 0); the readout stays the integrator, whose voltage ``lava`` probes.
Reset to zero discards the charge above the threshold at every spike, so a rate-coded layer fires a
little less than its ReLU asks for; ``specs/conversion.md`` gives the measured cost. With ``--steps``
the scales are re-fitted to that neuron before the rewrite (:mod:`snnx.convert.resetzero`).

With ``--integer`` the target also fixes how the graph is made integer (:func:`integer_options`): one
threshold per population (Loihi's ``vThMant`` is per layer), weights of at most 8 bits, thresholds in
17 bits and biases in 13 (Loihi's mantissas), the first layer's shifted left by the input's fractional
bits, which enter as graded spikes. The ``lava`` backend then deploys the graph at scale 1, without
re-quantising, and runs it spike for spike like the reference.

The IF populations of a MaxPool tree (``max(a, b) = b + relu(a - b)``) see only sums of ±1 spikes, so
their voltage is a whole number of thresholds: from zero state ``v > 1`` would wait for a second unit
(half the rate a steady ``a - b = 1`` stands for), whereas ``target any``'s ``v_init = 1/2`` fires at
the first. ``loihi`` doubles their input gain ``r`` instead, which on whole numbers is the rule of a
threshold 1/2 (and keeps an integer graph's thresholds integers).

``loihi-atrlif`` keeps the graph of ``any`` (reset "subtract", ``v_init`` at half the threshold) for
Loihi 2's ATRLIF neuron, which subtracts its threshold at a spike: backend ``lava`` runs such IF
populations on it as Lava processes (state reset between samples, not savable as netx). No reset-to-zero fit
or rewrite applies; only the integer graph differs from ``any``'s: like ``loihi``'s (one threshold per
population, 8-bit weights, the first layer shifted by the input's fractional bits), but with
thresholds of at most ``ATRLIF_THETA_MAX`` (2016: ATRLIF's never-reset 24-bit voltage holds 64 spikes of it). Leaky and signed
populations are refused: ATRLIF runs IF (no leak) and sends no negative spikes.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import nir
import numpy as np

from snnx.convert.driver import ConversionResult
from snnx.errors import ConversionError
from snnx.ir.nodes import is_neuron, is_spiking
from snnx.ir.semantics import reset_of, set_node_contract, signed_of

TARGETS = ("any", "loihi", "loihi-atrlif")

#: Loihi 2's number formats as netx writes them (``snnx.plugins.loihi.quantise``; not imported, so that
#: converting never loads a backend): 8-bit signed weights, 17-bit threshold and 13-bit bias mantissas,
#: at most 8 fractional bits of a graded input.
LOIHI_WEIGHT_BITS = 8
LOIHI_VTH_MAX = (1 << 17) - 1
LOIHI_BIAS_MAX = (1 << 12) - 1
LOIHI_INPUT_FRACTION_BITS = 8
#: A readout's voltage must stay in Loihi's 24 bits (6 of them fractional) for this many steps; lava's
#: own bound for a readout when the run length is unknown (``snnx lower``), so the report says exact.
LOIHI_READOUT_STEPS = 64
LOIHI_STATE_MAX = (1 << 23) - 1
#: The largest integer threshold ``Θ`` (weight units, before the graded input's ``2^e`` on the layer that
#: reads it) of ``--target loihi-atrlif``: ATRLIF's threshold register has 12 bits (``Θ = 2·θ_0 <= 8190``),
#: and its voltage, never reset within a sample, follows ``r``, which grows ``64·Θ`` per spike, in 24 bits, so
#: ``Θ·(n + 1) < 2^17`` for ``n`` spikes; the bound lets a neuron fire on every step of
#: ``LOIHI_READOUT_STEPS`` (the window the readout's bound assumes too). The ``lava`` backend takes
#: thresholds up to the register's 8190 (``snnx.plugins.loihi.subtract``) and checks every run for
#: saturation instead.
ATRLIF_THETA_MAX = min(2 * ((1 << 12) - 1), (LOIHI_STATE_MAX >> 6) // (LOIHI_READOUT_STEPS + 1))


def input_fraction_bits(x: np.ndarray, most: int = LOIHI_INPUT_FRACTION_BITS) -> int | None:
    """The fewest fractional bits ``e <= most`` for which every ``x * 2**e`` is an integer, or None."""
    x = np.asarray(x, dtype=np.float64)
    for e in range(most + 1):
        scaled = x * 2.0**e
        if np.all(scaled == np.round(scaled)):
            return e
    return None


def _reads_input(graph: nir.NIRGraph, name: str) -> bool:
    """Whether population ``name`` receives the graph's Input through stateless nodes only."""
    preds: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        preds.setdefault(dst, []).append(src)
    frontier, seen = list(preds.get(name, [])), set()
    while frontier:
        cur = frontier.pop()
        if cur in seen:
            continue
        seen.add(cur)
        node = graph.nodes[cur]
        if isinstance(node, nir.Input):
            return True
        if not is_neuron(node):
            frontier += preds.get(cur, [])
    return False


def loihi_integer_limits(
    graph: nir.NIRGraph, fraction_bits: int, threshold_max: int = LOIHI_VTH_MAX
) -> dict[str, tuple[float, float, float]]:
    """Per IF/I population, the largest threshold, bias and (readout) per-step input Loihi holds at scale 1.

    :param threshold_max: the largest threshold of a population that does not read the input
        (``LOIHI_VTH_MAX``, CUBA's ``vThMant``; ``ATRLIF_THETA_MAX`` for ATRLIF).

    The population that reads the analog input counts it in units of ``2**-fraction_bits`` on Loihi
    (graded spikes), so its threshold and bias mantissas are ``2**fraction_bits`` times larger there.
    A readout (``I``) never fires, and its probed voltage sums its input for the whole window: its
    per-step input is bounded so that ``LOIHI_READOUT_STEPS`` steps stay in the 24-bit voltage.
    """
    limits = {}
    inf = float("inf")
    for name, node in graph.nodes.items():
        if not isinstance(node, (nir.IF, nir.I)):
            continue
        shift = fraction_bits if _reads_input(graph, name) else 0
        readout = isinstance(node, nir.I)
        max_th = inf if readout else float(threshold_max >> shift)
        drive = float((LOIHI_STATE_MAX >> 6) // LOIHI_READOUT_STEPS >> shift) if readout else inf
        limits[name] = (max_th, float(LOIHI_BIAS_MAX >> shift), drive)
    return limits


def integer_options(
    graph: nir.NIRGraph, target: str, bits: int, samples: np.ndarray | None
) -> tuple[dict[str, Any], list[str]]:
    """The :func:`snnx.convert.integer.integerise` options for ``target``, and notes to print.

    :param samples: the calibration inputs: their fractional bits size the first layer's room.
    :raises ConversionError: ``bits`` exceed the target's weights.
    """
    if target not in ("loihi", "loihi-atrlif"):
        return {}, []
    if bits > LOIHI_WEIGHT_BITS:
        msg = (
            f"--integer {bits} --target {target}: Loihi's weights are {LOIHI_WEIGHT_BITS}-bit signed; "
            f"use --integer {LOIHI_WEIGHT_BITS} or fewer"
        )
        raise ConversionError(msg)
    e = input_fraction_bits(samples) if samples is not None else None
    if e is None:
        e = LOIHI_INPUT_FRACTION_BITS
        what = (
            "no calibration inputs were given" if samples is None
            else f"the calibration inputs are not multiples of 2^-{e}"
        )
        note = (
            f"target {target}: {what}; backend lava sends inputs as "
            f"graded spikes rounded to 2^-{e}, so quantise the inputs to multiples of 2^-{e} for runs "
            "spike-identical to the reference"
        )
    else:
        note = (
            f"target {target}: the calibration inputs are multiples of 2^-{e}: backend lava sends such inputs "
            "exactly (graded spikes), and the first layer's threshold and bias leave room for them"
        )
    threshold_max = ATRLIF_THETA_MAX if target == "loihi-atrlif" else LOIHI_VTH_MAX
    options = {"per_channel": False, "limits": loihi_integer_limits(graph, e, threshold_max)}
    if target == "loihi-atrlif":
        options["even_thresholds"] = True  # ATRLIF's integer register holds half the threshold
    return options, [note]


def half_threshold(threshold: Any) -> np.ndarray:
    """``v_init`` of ``--half-threshold-init``: ``⌈θ/2⌉`` for whole thresholds above 1 (an ``--integer``
    graph stays integer: the rounding ``integerise`` applies), ``θ/2`` otherwise."""
    th = np.asarray(threshold, dtype=np.float64)
    if np.all(th == np.rint(th)) and np.all(th > 1):
        return np.ceil(th / 2)
    return th / 2


def retarget(result: ConversionResult, target: str = "any") -> ConversionResult:
    """The conversion result adapted to ``target`` (a new result; ``result`` is unchanged)."""
    if target not in TARGETS:
        msg = f"--target must be one of {', '.join(TARGETS)}, got {target!r}"
        raise ConversionError(msg)
    if target == "any":
        return result
    if target == "loihi-atrlif":
        return _retarget_atrlif(result)
    graph = copy.deepcopy(result.graph)
    spiking = [name for name, node in graph.nodes.items() if is_spiking(node)]
    # Only where one ±1 spike is one threshold of charge (r = v_threshold, dt = 1 in converted graphs).
    max_tree = [
        n for layer in result.layers if layer.op_type == "MaxPool" for n in layer.neurons
        if n in graph.nodes and np.allclose(graph.nodes[n].v_threshold, graph.nodes[n].r)
    ]
    half = result.half_threshold_init
    for name in spiking:
        node = graph.nodes[name]
        v_init = half_threshold(node.v_threshold) if half and name not in max_tree else 0.0
        set_node_contract(node, reset="value", v_init=v_init)
    for name in max_tree:
        # Doubling the input gain is the same rule as halving the threshold, and keeps an --integer
        # graph's thresholds integers.
        node = graph.nodes[name]
        node.r = 2 * np.asarray(node.r, dtype=np.float64)
    note = (
        f"target loihi: {len(spiking)} IF populations reset to zero with zero initial state "
        "(Loihi's CUBA neuron has no subtract reset and starts from 0); run it with --backend lava"
    )
    if half:
        note += (
            f"; --half-threshold-init: {len(spiking) - len(max_tree)} of them start each window from half their "
            "threshold (backend lava: a pulse chain, not savable as netx)"
        )
    if max_tree:
        note += f"; the {len(max_tree)} MaxPool-tree populations (whole-number inputs) fire at one unit of input (input gain r doubled: the rule of threshold 1/2)"
    return dataclasses.replace(result, graph=graph, notes=[*result.notes, note])


def _retarget_atrlif(result: ConversionResult) -> ConversionResult:
    """``retarget(result, "loihi-atrlif")``: the graph unchanged, once checked to be what ATRLIF runs."""
    if result.half_threshold_init:
        msg = (
            "--half-threshold-init applies to --target loihi (target loihi-atrlif keeps reset 'subtract' with "
            "the populations starting from half their threshold already)"
        )
        raise ConversionError(msg)
    spiking = [name for name, node in result.graph.nodes.items() if is_spiking(node)]
    for name in spiking:
        node = result.graph.nodes[name]
        if not isinstance(node, nir.IF):
            msg = (
                f"--target loihi-atrlif: node {name!r} is a {type(node).__name__} population; Loihi 2's ATRLIF "
                "neuron runs IF populations only (no leak, no synaptic current)"
            )
            raise ConversionError(msg)
        if reset_of(node) != "subtract" or signed_of(node):
            what = "emits signed spikes" if signed_of(node) else f"resets by {reset_of(node)!r}"
            msg = (
                f"--target loihi-atrlif: IF node {name!r} {what}; Loihi 2's ATRLIF neuron runs reset "
                "'subtract' with 0/1 spikes only"
            )
            raise ConversionError(msg)
    note = (
        f"target loihi-atrlif: {len(spiking)} IF populations keep reset 'subtract'; backend lava runs them on "
        "Loihi 2's ATRLIF neuron (Lava processes, state reset between samples, not savable as netx)"
    )
    return dataclasses.replace(result, notes=[*result.notes, note])
