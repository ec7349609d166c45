"""Activity and cost of a spiking network: spikes, firing rates, synaptic operations, memory, energy.

Every number here is defined in ``specs/metrics.md``; the energy constants are cited there. In short:

- **spikes** of a spiking node (IF, LIF, CubaLIF, Threshold: the node kinds whose output is a spike
  train) are the non-zero entries of its output; the **firing rate** is spikes per neuron per time step.
- A **synaptic layer** (the ``weighted`` kinds: Affine, Linear, Conv1d/2d, SumPool2d/AvgPool2d, Scale)
  does one operation per (non-zero input element, output element it touches). The **fan-out** of an
  input element is the exact number of output elements it touches (:mod:`snnx.metrics.geometry`).
- A layer whose input is made of spikes (through Flatten, Delay, pools and fan-in sums of spikes) does
  **accumulates** (ACs, the SOPs): one per spike and target, so a pooled count ``c`` costs ``c`` ACs
  per target. A layer with analog input (the first layer fed with pixels, a readout fed with currents)
  does **multiply-accumulates** (MACs), one per non-zero input element and target.
- The **ANN** with the same topology (neurons replaced by ReLUs, one pass per sample) does
  ``Σ fan-out`` MACs per weighted layer and as many additions per pool.

Traces can come from the reference simulator (:func:`stats` runs it) or from any backend
(:func:`trace_module` records a lowered torch :class:`~snnx.torch.graph.GraphModule`); nodes missing
from a partial set of traces are recomputed from their inputs with the reference's stateless operators.

The package, by concern:

- :mod:`~snnx.metrics.geometry`: fan-out and window counts, one rule per synaptic node kind.
- :mod:`~snnx.metrics.energy`: energy per operation (with sources) and the energy models.
- :mod:`~snnx.metrics.stats`: :class:`Stats` of a prepared graph on one input.
- :mod:`~snnx.metrics.trace`: traces from a lowered torch model (torch imported lazily).
- :mod:`~snnx.metrics.ann`: the ANN's operation count stored by ``snnx convert``, the MAC = 4 SOPs rule.
- :mod:`~snnx.metrics.windows`: per time window ``T``, from one run: stats, predictions, accuracy.
- :mod:`~snnx.metrics.render`: rich tables (per layer, per ``T``) and summary lines.
"""

from __future__ import annotations

from snnx.metrics.ann import MAC_AS_SOPS, AnnOps, ann_from_metadata, store_ann
from snnx.metrics.energy import (
    HOROWITZ_45NM,
    LOIHI_NEURON_UPDATE_PJ,
    LOIHI_SOP_PJ,
    LOIHI_SPIKE_PJ,
    PRECISION_BITS,
    Energy,
    OpEnergy,
)
from snnx.metrics.geometry import fan_out
from snnx.metrics.render import render, render_windows, summary_lines, windows_table
from snnx.metrics.stats import LayerStats, Stats, combine, energy, stats
from snnx.metrics.trace import backend_traces, complete_traces, trace_module
from snnx.metrics.windows import Window, accuracy, cut, parse_windows, predictions, window_inputs

__all__ = [
    "HOROWITZ_45NM",
    "LOIHI_NEURON_UPDATE_PJ",
    "LOIHI_SOP_PJ",
    "LOIHI_SPIKE_PJ",
    "MAC_AS_SOPS",
    "PRECISION_BITS",
    "AnnOps",
    "Energy",
    "LayerStats",
    "OpEnergy",
    "Stats",
    "Window",
    "accuracy",
    "ann_from_metadata",
    "backend_traces",
    "combine",
    "complete_traces",
    "cut",
    "energy",
    "fan_out",
    "parse_windows",
    "predictions",
    "render",
    "render_windows",
    "stats",
    "store_ann",
    "summary_lines",
    "trace_module",
    "window_inputs",
    "windows_table",
]
