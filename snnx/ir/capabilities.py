"""What a backend can execute exactly, and the check of a prepared graph against it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnx.ir.nodes import ALL_KINDS, kind_of
from snnx.ir.prepare import PreparedGraph
from snnx.ir.semantics import RESET_MODES, i_init_of, reset_of, signed_of, v_init_of

#: Every node kind a flat graph can hold (nested ``NIRGraph`` nodes are flattened away first).
ALL_NODE_TYPES: frozenset[str] = ALL_KINDS


@dataclass(frozen=True)
class Capabilities:
    """What a backend can execute exactly (the capability model of ``specs/plugins.md``).

    :param node_types: NIR class names the backend lowers (``"LIF"``, ``"Conv2d"``, ...), the keys of
        :data:`snnx.ir.nodes.KINDS`. Nested ``NIRGraph`` nodes are flattened before this check.
    :param reset_modes: reset modes (``"value"``, ``"subtract"``) it reproduces exactly.
    :param cycles: whether recurrent edges (cycles) are supported.
    :param v_init: whether a non-zero initial state is supported.
    :param signed_spikes: whether neurons marked ``snnx.signed`` (spikes of -1 that take back
        over-firing, contract version 2) are reproduced; off unless a backend says so.
    """

    node_types: frozenset[str]
    reset_modes: frozenset[str] = frozenset(RESET_MODES)
    cycles: bool = False
    v_init: bool = True
    signed_spikes: bool = False


def graph_refusals(prepared: PreparedGraph, caps: Capabilities) -> list[str]:
    """Reasons a backend with ``caps`` cannot run ``prepared`` exactly; one line each, naming nodes."""
    reasons: list[str] = []
    by_type: dict[str, list[str]] = {}
    bad_reset: dict[str, list[str]] = {}
    bad_init: list[str] = []
    signed: list[str] = []
    for name, node in prepared.nodes.items():
        kind = kind_of(node, name)
        by_type.setdefault(kind.name, []).append(name)
        if kind.spiking and (mode := reset_of(node)) not in caps.reset_modes:
            bad_reset.setdefault(mode, []).append(name)
        if kind.spiking and not caps.signed_spikes and signed_of(node):
            signed.append(name)
        if not caps.v_init and kind.neuron:
            nonzero = np.any(v_init_of(node) != 0) or (kind.cuba and np.any(i_init_of(node) != 0))
            if nonzero:
                bad_init.append(name)
    for type_name, names in sorted(by_type.items()):
        if type_name not in caps.node_types:
            reasons.append(f"node type {type_name} is not supported (nodes {some(names)})")
    for mode, names in sorted(bad_reset.items()):
        reasons.append(f"reset mode {mode!r} is not supported (nodes {some(names)})")
    if bad_init:
        reasons.append(f"non-zero initial state v_init/i_init is not supported (nodes {some(bad_init)})")
    if signed:
        reasons.append(
            f"signed spikes (metadata snnx.signed, contract version 2) are not supported (nodes {some(signed)}); "
            "convert without --signed or run on a backend that declares signed_spikes (snnx plugins)"
        )
    if not caps.cycles and prepared.schedule.back_edges:
        src, dst = sorted(prepared.schedule.back_edges)[0]
        reasons.append(f"recurrent edge ({src!r} -> {dst!r}): cycles are not supported")
    return reasons


def some(names: list[str], limit: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more``: enough to find the nodes without flooding a table."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
