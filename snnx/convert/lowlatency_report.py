"""Extra ``--evaluate`` tables for low-latency and signed conversions (kept out of evaluate.py).

- spikes per neuron per sample, positive and negative (zero unless neurons are signed), per window ``T``;
- operations against the ANN counted as in Zou et al. (2024): a spike-driven accumulate is one SOP, a
  MAC is 4 low-bit SOPs (so the SNN's analog input layer counts 4 per MAC too).
"""

from __future__ import annotations

from snnx.metrics.ann import MAC_AS_SOPS


def signed_spike_table(ev) -> list[str]:
    """Positive and negative spikes per neuron (per sample) at every ``T``."""
    neurons = sum(ev.neurons.values()) or 1
    steps = sorted(ev.snn_accuracy)
    lines = [
        "spikes per neuron per sample (only signed neurons emit negative ones):",
        "",
        "| T | positive | negative | net |",
        "|---:|---:|---:|---:|",
    ]
    for t in steps:
        total = sum(per_t[t] for per_t in ev.spikes.values())
        neg = sum(per_t[t] for per_t in ev.negative.values())
        pos = total - neg
        lines.append(f"| {t} | {pos / neurons:.3f} | {neg / neurons:.3f} | {(pos - neg) / neurons:.3f} |")
    return lines


def low_bit_ops(st) -> tuple[float, float]:
    """``(SNN ops, ANN ops)`` per sample with a MAC worth :data:`MAC_AS_SOPS` SOPs."""
    return st.sops + MAC_AS_SOPS * st.macs, MAC_AS_SOPS * st.ann_macs


def low_bit_ops_table(ev) -> list[str]:
    """SOPs against the ANN's MACs, with a MAC taken as 4 low-bit SOPs, per ``T``."""
    lines = [
        f"operations with a MAC = {MAC_AS_SOPS} low-bit SOPs (Zou et al. 2024):",
        "",
        "| T | SNN SOPs | ANN (MACs × 4) | ANN / SNN | SNN ops (SOPs + MACs) per ANN MAC |",
        "|---:|---:|---:|---:|---:|",
    ]
    for t, st in sorted(ev.stats.items()):
        snn, ann = low_bit_ops(st)
        lines.append(
            f"| {t} | {snn:.4g} | {ann:.4g} | {ann / snn if snn else float('inf'):.3g} | {st.sop_mac_ratio:.3g} |"
        )
    return lines
