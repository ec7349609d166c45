"""Checking a graph against a backend's :class:`~snnx.registry.Capabilities`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nir
import numpy as np

from snnx.ir.passes import flatten
from snnx.ir.schedule import schedule
from snnx.errors import ValidationError
from snnx.ir.semantics import SPIKING_TYPES, STATEFUL_TYPES, i_init_of, reset_of, v_init_of

if TYPE_CHECKING:  # pragma: no cover
    from snnx.registry import Capabilities


def graph_refusals(graph: nir.NIRGraph, caps: Capabilities) -> list[str]:
    """Reasons a backend with ``caps`` cannot run ``graph`` exactly; one line each, naming nodes."""
    flat = flatten(graph)
    reasons: list[str] = []
    by_type: dict[str, list[str]] = {}
    for name, node in flat.nodes.items():
        by_type.setdefault(type(node).__name__, []).append(name)
    for type_name, names in sorted(by_type.items()):
        if type_name not in caps.node_types:
            reasons.append(f"node type {type_name} is not supported (nodes {_some(names)})")
    bad_reset: dict[str, list[str]] = {}
    bad_init: list[str] = []
    for name, node in flat.nodes.items():
        if isinstance(node, SPIKING_TYPES) and (mode := reset_of(node)) not in caps.reset_modes:
            bad_reset.setdefault(mode, []).append(name)
        if not caps.v_init and isinstance(node, STATEFUL_TYPES):
            if np.any(v_init_of(node) != 0) or np.any(i_init_of(node) != 0):
                bad_init.append(name)
    for mode, names in sorted(bad_reset.items()):
        reasons.append(f"reset mode {mode!r} is not supported (nodes {_some(names)})")
    if bad_init:
        reasons.append(f"non-zero initial state v_init/i_init is not supported (nodes {_some(bad_init)})")
    if not caps.cycles:
        try:
            back = schedule(flat).back_edges
        except ValidationError:  # validation reports structural problems; here only capabilities matter
            back = frozenset()
        if back:
            src, dst = sorted(back)[0]
            reasons.append(f"recurrent edge ({src!r} -> {dst!r}): cycles are not supported")
    return reasons


def _some(names: list[str], limit: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more``: enough to find the nodes without flooding a table."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
