"""The discrete-time contract of ``specs/semantics.md``, as stored in NIR metadata.

``graph.metadata["snnx"] = {"version": 2, "dt": ...}`` and per node
``node.metadata["snnx"] = {"reset": "value"|"subtract", "v_init": ..., "i_init": ..., "signed": bool}``.
``signed`` (version 2) marks a neuron that also emits -1 spikes to take back over-firing.
These helpers read the contract with its documented defaults and write it back without touching
anything else in the metadata.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snnx.errors import ValidationError

CONTRACT_VERSION = 2
#: The NIR paper's convention (its braille graphs store r = tau/dt with dt = 1e-4).
DEFAULT_DT = 1e-4
NAMESPACE = "snnx"

RESET_MODES = ("value", "subtract")


def _contract(obj: nir.NIRNode) -> dict[str, Any]:
    meta = getattr(obj, "metadata", None)
    if not isinstance(meta, dict):
        return {}
    value = meta.get(NAMESPACE, {})
    return value if isinstance(value, dict) else {}


def has_contract(graph: nir.NIRGraph) -> bool:
    """Whether the graph carries snnx contract metadata (otherwise defaults apply)."""
    return bool(_contract(graph))


def dt_of(graph: nir.NIRGraph, default: float | None = None) -> float:
    """The graph's time step: its stored ``dt``, else ``default``, else :data:`DEFAULT_DT`."""
    stored = _contract(graph).get("dt")
    if stored is not None:
        msg = f"metadata snnx.dt is {stored!r}; it must be one positive number (seconds), or pass --dt"
        arr = np.asarray(stored)
        if arr.dtype.kind not in "fiub" or arr.size != 1:
            raise ValidationError(msg)
        return float(arr.astype(np.float64).reshape(()))
    return float(default) if default is not None else DEFAULT_DT


def version_of(graph: nir.NIRGraph) -> int:
    """The contract version a graph was written for (1 when absent).

    :raises ValidationError: the version is not a whole number, or newer than this snnx understands
        (its meaning may differ: refusing is the only safe answer).
    """
    stored = _contract(graph).get("version", CONTRACT_VERSION)
    try:
        arr = np.asarray(stored)
        value = float(arr.reshape(-1)[0]) if arr.size == 1 and arr.dtype.kind in "fiub" else float("nan")
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value != int(value) or value < 1:
        msg = f"metadata snnx.version is {stored!r}; it must be a whole number >= 1 (this snnx writes {CONTRACT_VERSION})"
        raise ValidationError(msg)
    if int(value) > CONTRACT_VERSION:
        msg = (
            f"the file was written for snnx semantics version {int(value)}; this snnx implements version "
            f"{CONTRACT_VERSION} (specs/semantics.md), so it would run the graph with another meaning; upgrade snnx"
        )
        raise ValidationError(msg)
    return int(value)


def reset_of(node: nir.NIRNode) -> str:
    """The reset mode of a spiking node (``"value"`` unless the node says ``"subtract"``)."""
    mode = _contract(node).get("reset", "value")
    if isinstance(mode, bytes):
        mode = mode.decode()
    return str(mode)


def signed_of(node: nir.NIRNode) -> bool:
    """Whether a spiking node emits signed spikes (``specs/semantics.md`` §4, version 2)."""
    value = _contract(node).get("signed", False)
    return bool(np.asarray(value).item()) if not isinstance(value, bool) else value


def _state_init(node: nir.NIRNode, key: str) -> np.ndarray:
    value = _contract(node).get(key)
    return np.zeros(()) if value is None else np.asarray(value, dtype=np.float64)


def v_init_of(node: nir.NIRNode) -> np.ndarray:
    """Initial membrane state of a node (0 unless ``v_init`` is stored); broadcastable."""
    return _state_init(node, "v_init")


def i_init_of(node: nir.NIRNode) -> np.ndarray:
    """Initial synaptic-current state of a Cuba node (0 unless ``i_init`` is stored)."""
    return _state_init(node, "i_init")


def set_node_contract(
    node: nir.NIRNode,
    *,
    reset: str | None = None,
    v_init: Any = None,
    i_init: Any = None,
    signed: bool | None = None,
) -> nir.NIRNode:
    """Write contract entries into ``node.metadata["snnx"]`` (in place) and return the node."""
    if reset is not None and reset not in RESET_MODES:
        msg = f"reset must be one of {RESET_MODES}, got {reset!r}"
        raise ValidationError(msg)
    if not isinstance(node.metadata, dict):
        node.metadata = {}
    entry = dict(node.metadata.get(NAMESPACE, {}))
    for key, value in (("reset", reset), ("v_init", v_init), ("i_init", i_init)):
        if value is not None:
            entry[key] = value if isinstance(value, str) else np.asarray(value, dtype=np.float64)
    if signed is not None:
        if signed:
            entry["signed"] = True
        else:
            entry.pop("signed", None)
    node.metadata[NAMESPACE] = entry
    return node


def set_graph_contract(graph: nir.NIRGraph, *, dt: float) -> nir.NIRGraph:
    """Write ``{"version", "dt"}`` into ``graph.metadata["snnx"]`` (in place) and return the graph.

    The version is always :data:`CONTRACT_VERSION`: version 2 changed which cycle edge is delayed in
    multi-entry cycles (not only added signed spikes), so a graph this snnx wrote means version 2.
    """
    if not isinstance(graph.metadata, dict):
        graph.metadata = {}
    entry = dict(graph.metadata.get(NAMESPACE, {}))
    entry.update({"version": CONTRACT_VERSION, "dt": float(dt)})
    graph.metadata[NAMESPACE] = entry
    return graph


def producer_dt(graph: nir.NIRGraph) -> float | None:
    """The time step a producer evidently assumed, when ``r == tau/dt'`` for one dt' everywhere.

    Exporters such as the NIR paper's braille graphs store ``r = tau/dt`` so that ``dt/tau * r = 1``;
    detecting it lets ``snnx info`` tell the user which dt makes the file behave as its producer meant.
    """
    ratios, rs = [], []
    for node in iter_nodes(graph):
        tau = getattr(node, "tau", None)
        if tau is None:
            tau = getattr(node, "tau_mem", None)
        r = getattr(node, "r", None)
        if tau is None or r is None:
            continue
        tau, r = np.broadcast_arrays(np.asarray(tau, float), np.asarray(r, float))
        if np.any(r == 0):
            return None
        ratios.append((tau / r).ravel())
        rs.append(r.ravel())
    if not ratios:
        return None
    values = np.concatenate(ratios)
    if np.allclose(np.concatenate(rs), 1.0):
        return None  # r = 1 says nothing about dt
    if np.allclose(values, values[0], rtol=1e-4) and values[0] > 0:
        return float(values[0])
    return None


def iter_nodes(graph: nir.NIRGraph):
    """All non-graph nodes, recursing into nested subgraphs."""
    for node in graph.nodes.values():
        if isinstance(node, nir.NIRGraph):
            yield from iter_nodes(node)
        else:
            yield node
