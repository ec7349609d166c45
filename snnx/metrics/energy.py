"""Energy per operation and the two energy models of ``specs/metrics.md`` §4, with their sources.

Pure numbers: nothing here knows about graphs. :func:`estimates` turns operation counts into
:class:`Energy` figures; :meth:`snnx.metrics.Stats.energy` feeds it a graph's counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OpEnergy:
    """Energy of one addition and one multiplication at a precision, in picojoules."""

    add_pj: float
    mult_pj: float

    @property
    def ac_pj(self) -> float:
        """An accumulate is one addition."""
        return self.add_pj

    @property
    def mac_pj(self) -> float:
        """A multiply-accumulate is one multiplication plus one addition."""
        return self.mult_pj + self.add_pj


#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V.
HOROWITZ_45NM: dict[str, OpEnergy] = {
    "int8": OpEnergy(add_pj=0.03, mult_pj=0.2),
    "int32": OpEnergy(add_pj=0.1, mult_pj=3.1),
    "fp16": OpEnergy(add_pj=0.4, mult_pj=1.1),
    "fp32": OpEnergy(add_pj=0.9, mult_pj=3.7),
}
#: Bits per value at each precision (for memory).
PRECISION_BITS = {"int8": 8, "int32": 32, "fp16": 16, "fp32": 32}

#: Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1)
#: 2018, Table 1 (14 nm): minimum energy per synaptic spike op, per active neuron update, and per
#: spike sent within a tile. Tile hops, learning and barrier sync are not modelled.
LOIHI_SOP_PJ = 23.6
LOIHI_NEURON_UPDATE_PJ = 52.0
LOIHI_SPIKE_PJ = 1.7


@dataclass
class Energy:
    """An energy estimate in picojoules per sample, with the constants it used."""

    model: str
    snn_pj: float
    ann_pj: float
    constants: dict[str, float]

    @property
    def ratio(self) -> float:
        """ANN energy over SNN energy (> 1: the SNN is cheaper)."""
        return self.ann_pj / self.snn_pj if self.snn_pj else math.inf


def estimates(counts: Mapping[str, float], precision: str) -> dict[str, Energy]:
    """Energy estimates under each documented model (``specs/metrics.md`` §4).

    :param counts: per-sample ``sops``, ``macs``, ``neuron_updates``, ``spikes`` of the SNN and
        ``ann_macs``, ``ann_adds`` of the equivalent ANN (:meth:`snnx.metrics.Stats.totals` has them).
    :param precision: a key of :data:`HOROWITZ_45NM`.

    ``cmos45``: SNN = ACs·E_add + MACs·(E_mult+E_add); ANN = MACs·(E_mult+E_add) + pool adds·E_add,
    at ``precision`` (Horowitz 2014). ``loihi``: SNN = (ACs+MACs)·E_SOP + neuron updates·E_neuron
    + spikes·E_spike (Davies et al. 2018); the ANN figure is the ``cmos45`` one, for the ratio.
    """
    op = HOROWITZ_45NM[precision]
    sops, macs = counts["sops"], counts["macs"]
    ann = counts["ann_macs"] * op.mac_pj + counts["ann_adds"] * op.ac_pj
    cmos = Energy(
        "cmos45",
        snn_pj=sops * op.ac_pj + macs * op.mac_pj,
        ann_pj=ann,
        constants={"ac_pj": op.ac_pj, "mac_pj": op.mac_pj},
    )
    loihi = Energy(
        "loihi",
        snn_pj=(sops + macs) * LOIHI_SOP_PJ
        + counts["neuron_updates"] * LOIHI_NEURON_UPDATE_PJ
        + counts["spikes"] * LOIHI_SPIKE_PJ,
        ann_pj=ann,
        constants={"sop_pj": LOIHI_SOP_PJ, "neuron_update_pj": LOIHI_NEURON_UPDATE_PJ, "spike_pj": LOIHI_SPIKE_PJ},
    )
    return {"cmos45": cmos, "loihi": loihi}


__all__ = [
    "HOROWITZ_45NM",
    "LOIHI_NEURON_UPDATE_PJ",
    "LOIHI_SOP_PJ",
    "LOIHI_SPIKE_PJ",
    "PRECISION_BITS",
    "Energy",
    "OpEnergy",
    "estimates",
]
