"""Conversion targets (``snnx convert --target``): adapt a converted graph to a deployment's neuron.

``any`` (the default) keeps the conversion's IF neurons with reset "subtract" and ``v_init`` at half
the threshold, which any exact backend runs. ``loihi`` makes the graph one that Loihi's CUBA neuron
(backend ``lava``, fixed point) runs: reset to zero (Loihi has no subtract reset) and zero initial
state (Loihi's state starts at 0); the readout stays the integrator, whose voltage ``lava`` probes.
Reset to zero discards the charge above the threshold at every spike, so a rate-coded layer fires a
little less than its ReLU asks for; ``specs/conversion.md`` gives the measured cost.
"""

from __future__ import annotations

import copy
import dataclasses

from snnx.convert.driver import ConversionResult
from snnx.errors import ConversionError
from snnx.ir.nodes import is_spiking
from snnx.ir.semantics import set_node_contract

TARGETS = ("any", "loihi")


def retarget(result: ConversionResult, target: str = "any") -> ConversionResult:
    """The conversion result adapted to ``target`` (a new result; ``result`` is unchanged)."""
    if target not in TARGETS:
        msg = f"--target must be one of {', '.join(TARGETS)}, got {target!r}"
        raise ConversionError(msg)
    if target == "any":
        return result
    graph = copy.deepcopy(result.graph)
    spiking = [name for name, node in graph.nodes.items() if is_spiking(node)]
    for name in spiking:
        set_node_contract(graph.nodes[name], reset="value", v_init=0.0)
    note = (
        f"target loihi: {len(spiking)} IF populations reset to zero with zero initial state "
        "(Loihi's CUBA neuron has no subtract reset and starts from 0); run it with --backend lava"
    )
    return dataclasses.replace(result, graph=graph, notes=[*result.notes, note])
