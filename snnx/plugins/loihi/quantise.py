"""Loihi 2 fixed point: how snnx quantises a folded CUBA layer, and what that costs (reported per layer).

The formats are those of Lava's bit-accurate models (``lava.proc.lif.models.PyLifModelBitAcc``,
``lava.proc.dense.models``) and of lava-dl's netx; ``specs/backends/lava.md`` derives the choices.
Pure numpy: no Lava import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snnx.plugins.loihi.cuba import CubaLayer

#: Loihi 2 number formats used by netx / Lava's bit-accurate LIF and Dense models.
WEIGHT_MAX = 127  # 8-bit signed weight mantissa (netx keeps |w| <= 127 exact)
WEIGHT_MIN = -128
VTH_MAX = (1 << 17) - 1  # 17-bit unsigned threshold mantissa
#: ATRLIF (reset "subtract", snnx.plugins.loihi.subtract): ``θ_0 = vth/2`` in a 12-bit register.
ATRLIF_VTH_MAX = 2 * ((1 << 12) - 1)
DECAY_UNIT = 1 << 12  # 12-bit decays: du, dv in units of 1/4096
STATE_LIMIT = (1 << 23) - 1  # 24-bit signed voltage and current
STATE_SHIFT = 6  # Loihi stores u and v with 6 fractional bits relative to weights and thresholds
BIAS_MAX = (1 << 12) - 1  # 13-bit signed bias mantissa; netx uses bias_exp = 6, i.e. weight units
BIAS_MIN = -(1 << 12)
#: Loihi's neuron receives the summed synaptic input of a step as a 16-bit activation (``a_in``, int16 in
#: Lava's bit-accurate LIF; Lava's Python model adds the ports in int32 and would not wrap, the chip would).
ACTIVATION_MAX = (1 << 15) - 1
#: One synapse carries an 8-bit weight; ``weight_bits`` up to 16 split a weight into two such synapses.
SYNAPSE_BITS = 8
MAX_WEIGHT_BITS = 2 * SYNAPSE_BITS


@dataclass
class LayerQuantisation:
    """How one layer was put into Loihi's fixed point, and what that cost.

    ``scale`` maps folded float units to integer mantissas (``w_int = round(scale * w)``,
    ``vth = round(scale * theta)``); errors are in units of the layer's threshold.
    """

    layer: str
    scale: float
    weight: np.ndarray
    vth: int
    i_decay: int
    v_decay: int
    clipped: int
    weight_error: float
    threshold_error: float
    current_decay_error: float
    voltage_decay_error: float
    max_input: int
    exact: bool
    #: The per-step voltage bias in weight units (``bias_mant``; data shape), or None.
    bias: np.ndarray | None = None
    bias_error: float = 0.0
    #: ``"conv 8x8x8"`` / ``"dense 64"``: the synapse kind and the layer's neurons.
    kind: str = ""
    #: ``e`` of a layer whose weights are split into two 8-bit synapses (``weight = hi * 2**e + lo``,
    #: :func:`split_weight`): ``8 + e`` weight bits; 0 for Loihi's one 8-bit synapse per connection.
    weight_exp: int = 0
    #: The largest per-step input one neuron can receive from binary spikes (mantissa units): the larger
    #: of its positive and its negative fan-in sums, which all-of-one-sign inputs reach. Split rows also
    #: give ``v_floor``: the 24-bit voltage saturates that many thresholds below 0 (a finer grid means a
    #: larger ``vth`` mantissa, so a shallower floor; the reference has none).
    max_activation: int = 0

    @property
    def integer(self) -> bool:
        """Whether the layer's weights, threshold and bias were integers already (scale 1)."""
        return self.scale == 1.0 and self.exact

    def row(self) -> str:
        """One line of :meth:`snnx.plugins.loihi.model.LavaModel.report`."""
        return (
            f"{self.layer:<16} {self.kind:<14} scale={self.scale:<10.5g} vth={self.vth:<6d} iDecay={self.i_decay:<4d} "
            f"vDecay={self.v_decay:<4d} clipped={self.clipped:<3d} max|dw|={self.weight_error:.2e} "
            f"|dth|={self.threshold_error:.2e} |ddu|={self.current_decay_error:.1e} "
            f"|ddv|={self.voltage_decay_error:.1e} |db|={self.bias_error:.1e} max|in|={self.max_input} "
            f"exact={'yes' if self.exact else 'no'}"
        ) + (
            f" synapses=2 (hi<<{self.weight_exp} + lo, {SYNAPSE_BITS + self.weight_exp}-bit weights) "
            f"max|a|={self.max_activation} v_floor={-(STATE_LIMIT >> STATE_SHIFT) / max(self.vth, 1):.0f}vth"
            if self.weight_exp else ""
        )


def _power_of_two_scale(
    weight: np.ndarray, threshold: float | None, peak: float, bias: np.ndarray, cap: float = math.inf,
    prefer_unit: bool = True, weight_max: int = WEIGHT_MAX, vth_max: int = VTH_MAX, vth_step: int = 1,
) -> float | None:
    """A scale 2**k that makes every weight, the threshold and the bias exact in-range integers, if one
    exists: 1 when they are integers already and ``prefer_unit`` (an integer SNN keeps its own numbers),
    else the largest such (the finest grid for the threshold and for decays' rounding). ``peak`` is
    ``max|weight|`` (0 for no weights); ``cap`` bounds the scale.
    """
    if peak == 0.0:
        return None
    integer = prefer_unit and (
        peak <= weight_max and np.all(weight == np.round(weight)) and np.all(bias == np.round(bias))
        and (threshold is None or (threshold == round(threshold) and 1 <= threshold <= vth_max and round(threshold) % vth_step == 0))
        and np.all(bias <= BIAS_MAX) and np.all(bias >= BIAS_MIN) and cap >= 1
    )
    if integer:
        return 1.0
    top = min(math.floor(math.log2(weight_max / peak)), math.floor(math.log2(cap)) if cap < math.inf else 1 << 10)
    for k in range(top, top - 40, -1):
        scale = 2.0**k
        w, th, b = weight * scale, 1.0 if threshold is None else threshold * scale, bias * scale
        if th > vth_max or np.any(b > BIAS_MAX) or np.any(b < BIAS_MIN):
            continue
        if np.all(w == np.round(w)) and th == round(th) and th >= 1 and round(th) % vth_step == 0 and np.all(b == np.round(b)):
            return scale
    return None


#: Steps assumed for the voltage range of a non-decaying readout (``I``) when the run length is unknown.
DEFAULT_READOUT_STEPS = 64


def voltage_bound(layer: CubaLayer, steps: int | None = None, input_peak: float = 1.0) -> float:
    """An upper bound of ``|v|`` (folded units) of a layer that never fires: the per-step input bound
    ``max(Σ|w| · input_peak + |b|)`` summed geometrically through the current and voltage decays
    (``steps`` times for a voltage that does not decay)."""
    w = np.abs(layer.weight).reshape(layer.weight.shape[0], -1).sum(axis=1) * input_peak
    per_step = float(np.max(w.reshape(-1, *([1] * (len(layer.data_shape) - 1))) + np.abs(layer.voltage_bias())))
    u = per_step / layer.current_decay if layer.current_decay > 0 else per_step * (steps or DEFAULT_READOUT_STEPS)
    return u / layer.voltage_decay if layer.voltage_decay > 0 else u * (steps or DEFAULT_READOUT_STEPS)


def split_weight(weight: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hi, lo)`` with ``weight = hi * 2**e + lo``, both 8-bit mantissas, for integer weights within
    ``±127 * 2**e`` (``1 <= e <= 8``): ``lo`` in ``[-2**(e-1), 2**(e-1))`` and ``hi`` within ``±127``."""
    w = np.asarray(weight, dtype=np.int64)
    hi = (w + (1 << (e - 1))) >> e
    return hi, w - (hi << e)


def max_activation(weight: np.ndarray) -> int:
    """The largest ``|Σ w s|`` over binary spikes ``s`` for one neuron's row of integer weights."""
    w = np.asarray(weight, dtype=np.int64).reshape(weight.shape[0], -1) if weight.size else np.zeros((1, 1), np.int64)
    return int(max(np.clip(w, 0, None).sum(axis=1).max(), (-np.clip(w, None, 0)).sum(axis=1).max()))


def quantise_layer(
    layer: CubaLayer, *, steps: int | None = None, input_peak: float = 1.0, weight_bits: int = SYNAPSE_BITS,
) -> LayerQuantisation:
    """Quantise one folded layer to Loihi's formats (see ``specs/backends/lava.md``).

    The scale is the largest that keeps weights in 8 bits (``127 / max|w|``) and the threshold in 17
    bits; a power-of-two scale is used instead when it represents every weight and the threshold
    exactly, because then the float reference sums the same numbers without rounding. Weights,
    threshold and bias that are integers already keep scale 1 in a layer without decay (an integer SNN
    deploys as it is; a decaying layer takes the finest exact grid instead). A
    layer that never fires (its voltage is read out) is further limited so that its voltage stays in
    Loihi's 24-bit range (:func:`voltage_bound` over ``steps`` with inputs up to ``input_peak``).

    ``weight_bits > 8`` quantises the weights to ``±127 * 2**e`` (``e = weight_bits - 8``), deployed as
    two 8-bit synapses per connection (:func:`split_weight`): the same rules on a grid ``2**e`` finer.
    """
    e = weight_bits - SYNAPSE_BITS
    if not 0 <= e <= SYNAPSE_BITS:
        msg = f"weight_bits must be {SYNAPSE_BITS}..{MAX_WEIGHT_BITS} (two 8-bit synapses at most), got {weight_bits}"
        raise ValueError(msg)
    weight_max = WEIGHT_MAX << e
    weight_min = WEIGHT_MIN if e == 0 else -weight_max
    # A non-spiking layer (read out by probing its voltage) never fires: its threshold is the largest
    # mantissa, and its errors are in units of v rather than of a threshold.
    theta = float(layer.threshold) if layer.spiking else 1.0
    w = layer.weight
    bias = layer.voltage_bias()
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    bias_peak = float(np.max(np.abs(bias))) if bias.size else 0.0
    v_cap = math.inf if layer.spiking else STATE_LIMIT / ((1 << STATE_SHIFT) * max(voltage_bound(layer, steps, input_peak), 1e-300))
    # Decays round v to 1/64 of a weight unit each step: a decaying layer takes the largest exact scale
    # (finest grid) even when its numbers are integers; a non-decaying one keeps integers as they are.
    no_decay = layer.current_decay == 1.0 and layer.voltage_decay in (0.0, 1.0)
    # Reset "subtract" runs on ATRLIF (snnx.plugins.loihi.subtract): its 12-bit register holds half the
    # threshold, so the mantissa is even and at most ATRLIF_VTH_MAX.
    atrlif = layer.spiking and layer.reset == "subtract"
    vth_max, vth_step = (ATRLIF_VTH_MAX, 2) if atrlif else (VTH_MAX, 1)
    exact_scale = _power_of_two_scale(
        w, theta if layer.spiking else None, peak, bias, v_cap, prefer_unit=no_decay, weight_max=weight_max,
        vth_max=vth_max, vth_step=vth_step,
    )
    if exact_scale is not None:
        scale = exact_scale
    else:
        scale = weight_max / peak if peak > 0 else 1.0
        scale = min(scale, vth_max / theta if layer.spiking else math.inf, BIAS_MAX / bias_peak if bias_peak else math.inf, v_cap)
        if layer.spiking and scale * theta >= vth_step:
            # Round the scale rather than the threshold: the largest scale whose threshold mantissa is an
            # integer makes the threshold exact at a cost of under 1/vth of the weight range. A threshold
            # of a few dozen mantissa units rounded on its own is off by up to 1/(2 vth) on every
            # spike decision (conformance case conv_lif_sumpool_affine: 11 -> 2 of 250 spikes differ).
            scale = math.floor(scale * theta / vth_step) * vth_step / theta
    b_raw = np.round(bias * scale)
    b_int = np.clip(b_raw, BIAS_MIN, BIAS_MAX).astype(np.int64)
    bias_error = float(np.max(np.abs(b_int / scale - bias))) / theta if bias.size else 0.0
    raw = np.round(w * scale)
    w_int = np.clip(raw, weight_min, weight_max).astype(np.int64)
    clipped = int(np.sum(raw != w_int)) + int(np.sum(b_raw != b_int))
    vth = int(min(max(round(theta * scale), 0), vth_max)) if layer.spiking else VTH_MAX
    i_decay = int(round(layer.current_decay * DECAY_UNIT))
    v_decay = int(round(layer.voltage_decay * DECAY_UNIT))
    weight_error = float(np.max(np.abs(w_int / scale - w))) / theta if w.size else 0.0
    threshold_error = abs(vth / scale - theta) / theta if layer.spiking else 0.0
    du_err = abs(i_decay / DECAY_UNIT - layer.current_decay)
    dv_err = abs(v_decay / DECAY_UNIT - layer.voltage_decay)
    fan_in = np.abs(w_int).reshape(w_int.shape[0], -1).sum(axis=1) if w.size else np.zeros(1)
    # Exact means: integer arithmetic with no rounding (no decays: a voltage decay of 1, which zeroes
    # the voltage every step, rounds nothing either) on exactly represented parameters.
    exact = (
        (exact_scale is not None or not layer.spiking and peak == 0.0) and clipped == 0 and weight_error == 0
        and threshold_error == 0 and bias_error == 0 and i_decay == DECAY_UNIT and v_decay in (0, DECAY_UNIT)
        and du_err == 0 and dv_err == 0
    )
    return LayerQuantisation(
        layer=layer.nodes[-1], scale=scale, weight=w_int, vth=vth, i_decay=i_decay, v_decay=v_decay,
        clipped=clipped, weight_error=weight_error, threshold_error=threshold_error,
        current_decay_error=du_err, voltage_decay_error=dv_err, max_input=int(fan_in.max()), exact=exact,
        bias=b_int if np.any(b_int) else None, bias_error=bias_error,
        kind=f"{layer.kind} {'x'.join(map(str, layer.data_shape))}", weight_exp=e, max_activation=max_activation(w_int),
    )


def activation_refusals(quant: list[LayerQuantisation]) -> list[str]:
    """Why a layer with split synapses would overflow Loihi's neuron (empty when it cannot): its worst-case
    per-step input (:attr:`LayerQuantisation.max_activation`) must fit the 16-bit ``a_in``, and the voltage
    it can reach above the threshold (``vth + max|a|``, ``<< 6``) the 24-bit ``v``. Checked for the split
    layers only: the 8-bit path is netx's, unchanged (its ``max|in|`` column reports the same quantity)."""
    reasons = []
    for q in quant:
        if not q.weight_exp:
            continue
        bits = SYNAPSE_BITS + q.weight_exp
        if q.max_activation > ACTIVATION_MAX:
            fit = next((b for b in range(bits - 1, SYNAPSE_BITS, -1) if q.max_activation >> (bits - b) <= ACTIVATION_MAX), SYNAPSE_BITS)
            reasons.append(
                f"node {q.layer!r}: with {bits}-bit weights (two 8-bit synapses) one step's input can reach "
                f"{q.max_activation} (worst case: every input of one sign spiking), beyond the 16-bit activation "
                f"(a_in, max {ACTIVATION_MAX}) of Loihi's neuron (give this layer at most {fit} bits: "
                f"weight_bits={{{q.layer!r}: {fit}, '*': {bits}}})"
            )
        elif (q.vth + q.max_activation) << STATE_SHIFT > STATE_LIMIT:
            reasons.append(
                f"node {q.layer!r}: with {bits}-bit weights the voltage can reach vth + max|a| = "
                f"{q.vth + q.max_activation} mantissa units, beyond Loihi's 24-bit voltage (use fewer weight_bits)"
            )
    return reasons


def quantisation_refusals(quant: list[LayerQuantisation]) -> list[str]:
    """Why fixed point would not equal the reference spike for spike (empty when it would)."""
    reasons = []
    for q in quant:
        if q.exact:
            continue
        what = []
        if q.weight_error or q.threshold_error or q.bias_error or q.clipped:
            err = max(q.weight_error, q.threshold_error, q.bias_error)
            what.append(f"weights/threshold/bias off by up to {err:.2e} thresholds")
        if q.i_decay != DECAY_UNIT or q.v_decay not in (0, DECAY_UNIT):
            what.append("decays round the state to Loihi's 1/64 grid every step")
        reasons.append(
            f"node {q.layer!r}: Loihi fixed point is not exact here ({'; '.join(what)}); lower without "
            "exact=True to deploy with this error (reported per layer), or use backend 'lava-float'"
        )
    return reasons
