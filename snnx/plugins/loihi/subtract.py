"""Reset "subtract" on Loihi 2: an IF population as Lava's ATRLIF neuron (adaptive threshold and refractoriness).

Loihi's CUBA neuron (``LIF``/``LIFReset``, netx's ``CUBA``) resets the voltage to 0. Lava's ATRLIF neuron
(``lava.proc.atrlif``, with a bit-accurate Loihi 2 model under ``fixed_pt``) never resets its voltage:
it fires when ``v - r >= θ`` and then adds ``2θ`` to its refractory state ``r``. With no decay of ``v``,
``r`` and ``θ`` and a current that decays fully every step, ``v`` is the sum of the input and ``r`` is
``2θ`` times the spikes so far, so the ``(N+1)``-th spike comes when the input sum reaches ``(2N+1)θ``:
the IF neuron with reset "subtract" and threshold ``2θ``. In Loihi's units (state ``<< 6``), for the
contract's IF with integer threshold ``Θ``, initial state ``V0`` and the strict ``v > Θ``:

- ``θ_0 = Θ/2`` (so ``2θ = 64·Θ`` in state units: every spike takes one threshold away);
- ``v(0) = 64·V0 - 32·Θ - 1``: moves the first crossing from ``32·Θ`` to ``64·(Θ - V0)`` and turns
  Loihi's ``>=`` into the contract's ``>`` (the input is a multiple of 64, so ``> K`` is ``>= K + 1``);
- ``δ_i`` such that the current decays by exactly 4096/4096 (``z`` enters ``v`` once), ``δ_v = δ_r = δ_θ = 0``.

The spikes then equal the reference's bit for bit (``tests/test_lava_subtract.py``). What this costs:
ATRLIF has no ``reset_interval``, so a batch runs as per-sample segments of one Lava run with the state
set back between them (on the chip: the state is reset between inferences), and its bias acts from the
run's first step while a layer's input arrives after the pipeline's fill (layer ``j`` at step ``j``):
``v(0)`` takes that bias back. ``θ_0`` is a 12-bit integer register, so ``Θ`` is even and ``<= 8190``
(for the first layer after the graded input's shift; the quantiser keeps it so), and a leaky layer is
refused (the offsets above would decay). ``v`` and ``r`` are never reset within a sample: every run
checks them for saturation (:func:`saturation_error`). ATRLIF is not a netx neuron: such a model is not
savable as netx HDF5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaLayer
from snnx.plugins.loihi.quantise import DECAY_UNIT, STATE_SHIFT, LayerQuantisation

#: ATRLIF's ``v`` is clipped to ``±STATE_MAX`` (24 bits), and its ``r`` is a 24-bit register on the chip.
STATE_MAX = (1 << 23) - 1


def is_subtract(layer: CubaLayer) -> bool:
    """Whether the layer is a spiking layer with reset "subtract" (deployed as ATRLIF)."""
    return layer.spiking and layer.reset == "subtract"


def layer_refusals(layer: CubaLayer) -> list[str]:
    """Why ATRLIF cannot run this subtract-reset layer exactly (empty when it can)."""
    name = layer.nodes[-1]
    decays = layer.neuron_decays or (layer.current_decay, layer.voltage_decay)
    du, dv = (np.asarray(d, dtype=np.float64) for d in decays)
    reasons = []
    if np.any(dv != 0.0):
        reasons.append(
            f"node {name!r}: reset 'subtract' with a leak; Loihi's CUBA neuron resets the voltage to 0, and the "
            "ATRLIF neuron snnx uses for a subtract reset is exact only without a leak (use an IF neuron, reset "
            "to zero with --target loihi, or backend 'lava-float')"
        )
    if np.any(du != 1.0):
        reasons.append(
            f"node {name!r}: reset 'subtract' with a decaying current; the ATRLIF neuron snnx uses for a subtract "
            "reset takes a current that decays fully every step (an IF layer), or use backend 'lava-float'"
        )
    if layer.recurrent is not None:
        reasons.append(
            f"node {name!r}: a recurrent layer with reset 'subtract' (not built on the ATRLIF path); use backend "
            "'lava-float'"
        )
    return reasons


def fill_refusal(q: LayerQuantisation, fill: int) -> str | None:
    """Why the population cannot wait ``fill`` steps for its first input: ``v(0)`` takes back the bias of
    those steps, so with a negative bias it starts ``(fill-1)·|b|`` above its lowest point and would fire
    once that exceeds the threshold; and ``v(0)`` must fit the 24-bit voltage."""
    if q.bias is None or fill == 0:
        return None
    low, high = float(np.min(q.bias)), float(np.max(q.bias))
    if low < 0 and (fill - 1) * -low > q.vth:
        return (
            f"node {q.layer!r}: its negative bias over the {fill} steps before its first input would reach the "
            "threshold on Loihi's ATRLIF neuron (no reset before the window); use backend 'lava-float'"
        )
    unit = 1 << STATE_SHIFT
    if (unit // 2) * q.vth + 1 + fill * unit * max(abs(low), abs(high)) > STATE_MAX:
        return (
            f"node {q.layer!r}: the bias of the {fill} steps before its first input does not fit ATRLIF's 24-bit "
            "voltage; use backend 'lava-float'"
        )
    return None


def early_spike_refusal(q: LayerQuantisation, fill: int, name: str) -> str | None:
    """Why a reset-to-zero population before an ATRLIF layer could fire before its own window: Loihi
    resets it only when its window starts, so its bias over the ``fill`` steps before could fire it, and
    the never-reset ATRLIF layer after it would keep that charge."""
    # (A decaying voltage accumulates less: the bound without decay covers it.)
    if q.bias is None or fill * float(np.max(q.bias)) <= q.vth:
        return None
    return (
        f"node {q.layer!r}: its positive bias over the {fill} steps before its first input could fire it before "
        f"its window, and the ATRLIF layer {name!r} after it (reset subtract, never reset within a sample) "
        "would keep that input; use backend 'lava-float'"
    )


def atrlif_population(q: LayerQuantisation, size: int, fill: int) -> Any:
    """The Lava ATRLIF process for a subtract-reset IF population quantised as ``q`` (threshold and bias
    mantissas already shifted for a graded input), whose input arrives from step ``fill`` of the run."""
    atrlif = import_lava("lava.proc.atrlif.process")
    bias = np.zeros(size) if q.bias is None else np.asarray(q.bias, dtype=np.float64).reshape(-1) * np.ones(size)
    unit = 1 << STATE_SHIFT
    # v(0): the initial state's own charge comes through the pulse inputs; here only the offset of the
    # first crossing, the strict comparison and the bias the run adds before the input arrives.
    v0 = -(unit // 2) * q.vth - 1 - fill * unit * bias
    return atrlif.ATRLIF(
        shape=(size,), i=0, v=v0.astype(np.int64), theta=0, r=0,
        # ATRLIF's fixed-point current decay is delta_i * 4096 + 1: this makes it exactly 4096.
        delta_i=(DECAY_UNIT - 1) / DECAY_UNIT, delta_v=0, delta_theta=0, delta_r=0,
        theta_0=q.vth / 2, theta_step=0, bias_mant=bias.astype(np.int64), bias_exp=STATE_SHIFT,
    )


def saturation_error(name: str, v: np.ndarray, r: np.ndarray, windows: list[tuple[int, int]]) -> str | None:
    """Why an ATRLIF population's run may differ from the contract (None: it cannot have).

    ``v`` and ``r`` are its recorded states, ``(neurons, steps)``; ``windows`` the ``[start, stop)`` steps
    of each sample's window. ``v`` is never reset: it follows ``r`` (``64·Θ`` per spike) and falls with net
    inhibition, and Loihi clips it at ``±(2^23 - 1)``. At the upper bound the neuron may miss spikes the
    reference fires. At the lower bound it sits above the reference's voltage, which matters only if it
    fires afterwards (if it does not, the lower reference voltage does not either). ``r`` grows by
    ``64·Θ`` per spike and is 24 bits on the chip (Lava's Python model does not wrap it).
    """
    for b, (start, stop) in enumerate(windows):
        vw, rw = v[:, start:stop], r[:, start:stop]
        fired = np.diff(np.concatenate([rw[:, :1], rw], axis=1), axis=1) > 0
        high = np.any(vw >= STATE_MAX, axis=1) | np.any(rw > STATE_MAX, axis=1)
        low = vw <= -STATE_MAX
        # a spike after the first step clipped at the lower bound
        after_low = np.any(np.cumsum(low, axis=1)[:, :-1].astype(bool) & fired[:, 1:], axis=1)
        bad = np.flatnonzero(high | after_low)
        if bad.size:
            return (
                f"node {name!r}: Loihi 2's ATRLIF state (24 bits, never reset within a sample) saturated for "
                f"neuron(s) {bad[:5].tolist()} in sample {b}, so its spikes may differ from the contract: run "
                "fewer steps, or convert with lower thresholds (--target loihi-atrlif bounds them for 64 steps)"
            )
    return None
