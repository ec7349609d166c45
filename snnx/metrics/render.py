"""A :class:`~snnx.metrics.Stats` as a rich table and a few summary lines (rich is imported lazily)."""

from __future__ import annotations

from typing import Any

from snnx.metrics.stats import Stats


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-2:
        return f"{value:.3g}"
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def _joules(pj: float) -> str:
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
            _fmt(layer.neurons) if layer.neurons else "",
            _fmt(layer.spikes) if layer.kind == "spiking" else "",
            f"{layer.rate:.4f}" if layer.kind == "spiking" else "",
            _fmt(layer.ops) if layer.kind == "synaptic" else "",
            layer.op_kind,
            _fmt(layer.fan_out) if layer.kind == "synaptic" else "",
            _fmt(layer.ann_ops) if layer.kind == "synaptic" else "",
            _fmt(layer.params) if layer.params else "",
        )
    return table


def summary_lines(s: Stats) -> list[str]:
    """The totals and energy estimates as short lines of text."""
    t = s.totals()
    lines = [
        f"spikes {_fmt(t['spikes'])}   rate {t['rate']:.4f}   SOPs (AC) {_fmt(t['sops'])}   "
        f"SNN MACs {_fmt(t['macs'])}   neuron updates {_fmt(t['neuron_updates'])}",
        f"ANN MACs {_fmt(t['ann_macs'])}   ANN adds {_fmt(t['ann_adds'])}   params {_fmt(t['params'])} "
        f"({_fmt(t['param_bytes'])} B)   state {_fmt(t['state'])} ({_fmt(t['state_bytes'])} B/sample) at {s.precision}",
    ]
    for e in s.energy.values():
        lines.append(
            f"energy ({e.model}): SNN {_joules(e.snn_pj)}, ANN {_joules(e.ann_pj)} (cmos45), ANN/SNN {e.ratio:.3g}x"
        )
    return lines


__all__ = ["render", "summary_lines"]
