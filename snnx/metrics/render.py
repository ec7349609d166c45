"""A :class:`~snnx.metrics.Stats` as a rich table and a few summary lines, and the per-T table of
:mod:`snnx.metrics.windows` (rich is imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from snnx.metrics.ann import MAC_AS_SOPS
from snnx.metrics.stats import Stats
from snnx.metrics.windows import Window


def number(value: float) -> str:
    """A count, short: thousands separators, three significant digits when large or tiny."""
    if value == 0:
        return "0"
    try:
        float(value)
    except OverflowError:  # an integer beyond float range (a Delay of 1e308 s in steps): its magnitude
        return f"{'-' if value < 0 else ''}~1e{len(str(abs(int(value)))) - 1}"
    if abs(value) >= 1e6 or abs(value) < 1e-2:
        return f"{value:.3g}"
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def ratio(value: float, unit: str = "") -> str:
    """A ratio with three significant digits; "n/a" where its denominator was 0 (e.g. a graph with no
    ANN operations to compare against) or it is not a number."""
    value = float(value)
    return f"{value:.3g}{unit}" if np.isfinite(value) else "n/a"


def joules(pj: float) -> str:
    """Picojoules in the unit that gives 1-999."""
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def render(s: Stats, title: str = "stats") -> Any:
    """A :class:`rich.table.Table` of the per-layer numbers with the totals below."""
    from rich.table import Table

    table = Table(title=f"{title} (per sample, T={s.steps}, batch={s.batch})", title_justify="left")
    for col in ("node", "type", "shape", "neurons", "spikes", "rate", "ops", "kind", "fan-out", "ANN ops", "params"):
        table.add_column(col, justify="left" if col in ("node", "type", "shape", "kind") else "right")
    for layer in s.layers:
        if layer.kind == "other" and not layer.params:
            continue
        table.add_row(
            layer.name,
            layer.type,
            "x".join(map(str, layer.shape)) or "scalar",
            number(layer.neurons) if layer.neurons else "",
            number(layer.spikes) if layer.kind == "spiking" else "",
            f"{layer.rate:.4f}" if layer.kind == "spiking" else "",
            number(layer.ops) if layer.kind == "synaptic" else "",
            layer.op_kind,
            number(layer.fan_out) if layer.kind == "synaptic" else "",
            number(layer.ann_ops) if layer.kind == "synaptic" else "",
            number(layer.params) if layer.params else "",
        )
    return table


def summary_lines(s: Stats) -> list[str]:
    """The totals and energy estimates as short lines of text."""
    t = s.totals()
    lines = [
        f"spikes {number(t['spikes'])}   rate {t['rate']:.4f}   SOPs (AC) {number(t['sops'])}   "
        f"SNN MACs {number(t['macs'])}   neuron updates {number(t['neuron_updates'])}",
        f"ANN MACs {number(t['ann_macs'])}   ANN adds {number(t['ann_adds'])}   params {number(t['params'])} "
        f"({number(t['param_bytes'])} B)   state {number(t['state'])} ({number(t['state_bytes'])} B/sample) at {s.precision}",
        f"spikes per neuron +{s.positive_per_neuron:.3f} / -{s.negative_per_neuron:.3f}   "
        f"SNN ops / ANN MAC {ratio(s.sop_mac_ratio)}   ANN/SNN ops with a MAC = {MAC_AS_SOPS} SOPs "
        f"{ratio(s.low_bit_ratio, 'x')}   (ANN MACs from {s.ann_source})",
    ]
    for e in s.energy.values():
        lines.append(
            f"energy ({e.model}): SNN {joules(e.snn_pj)}, ANN {joules(e.ann_pj)} (cmos45), ANN/SNN {ratio(e.ratio, 'x')}"
        )
    return lines


def windows_table(windows: Sequence[Window]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of strings for the per-T table (the accuracy column only with labels)."""
    labelled = any(w.accuracy is not None for w in windows)
    header = [
        "T", *(["accuracy"] if labelled else []), "spikes/neuron +", "spikes/neuron −", "SOPs", "SNN MACs",
        "SNN ops / ANN MAC", "ANN/SNN ops (MAC=4 SOPs)", "E_SNN (cmos45)", "E_ANN/E_SNN", "E_SNN (loihi)",
    ]
    rows = []
    for w in windows:
        r = w.row()
        rows.append([
            str(w.steps),
            *([f"{100 * w.accuracy:.2f}%" if w.accuracy is not None else ""] if labelled else []),
            f"{r['positive_per_neuron']:.3f}",
            f"{r['negative_per_neuron']:.3f}",
            number(r["sops"]),
            number(r["macs"]),
            ratio(r["sop_mac_ratio"]),
            ratio(r["low_bit_ratio"]),
            joules(r["snn_pj"]),
            ratio(r["energy_ratio"]),
            joules(r["loihi_pj"]),
        ])
    return header, rows


def render_windows(windows: Sequence[Window], title: str = "per T") -> Any:
    """A :class:`rich.table.Table` with one row per window (:func:`windows_table`)."""
    from rich.table import Table

    header, rows = windows_table(windows)
    first = windows[0].stats if windows else None
    note = f" (per sample, batch={first.batch}, ANN MACs {number(first.ann_macs)} from {first.ann_source})" if first else ""
    table = Table(title=f"{title}{note}", title_justify="left")
    for col in header:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


__all__ = ["joules", "number", "render", "render_windows", "summary_lines", "windows_table"]
