"""Conversion targets (``snnx convert --target``): adapt a converted graph to a deployment's neuron.

``any`` (the default) keeps the conversion's IF neurons with reset "subtract" and ``v_init`` at half
the threshold, which any exact backend runs. ``loihi`` makes the graph one that Loihi's CUBA neuron
(backend ``lava``, fixed point) runs: reset to zero (Loihi has no subtract reset) and zero initial
state (Loihi's state starts at 0); the readout stays the integrator, whose voltage ``lava`` probes.
Reset to zero discards the charge above the threshold at every spike, so a rate-coded layer fires a
little less than its ReLU asks for; ``specs/conversion.md`` gives the measured cost.

The IF populations of a MaxPool tree (``max(a, b) = b + relu(a - b)``) see only sums of ±1 spikes, so
their voltage is a whole number of thresholds: from zero state ``v > 1`` would wait for a second unit
(half the rate a steady ``a - b = 1`` stands for), whereas ``target any``'s ``v_init = 1/2`` fires at
the first. ``loihi`` gives them the threshold 1/2 instead, which on whole numbers is the same rule.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

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
    # Only where one ±1 spike is one threshold of charge (r = v_threshold, dt = 1 in converted graphs).
    max_tree = [
        n for layer in result.layers if layer.op_type == "MaxPool" for n in layer.neurons
        if n in graph.nodes and np.allclose(graph.nodes[n].v_threshold, graph.nodes[n].r)
    ]
    for name in max_tree:
        node = graph.nodes[name]
        node.v_threshold = np.asarray(node.v_threshold, dtype=np.float64) / 2
    note = (
        f"target loihi: {len(spiking)} IF populations reset to zero with zero initial state "
        "(Loihi's CUBA neuron has no subtract reset and starts from 0); run it with --backend lava"
    )
    if max_tree:
        note += f"; the {len(max_tree)} MaxPool-tree populations (whole-number inputs) fire at v >= 1 (threshold 1/2)"
    return dataclasses.replace(result, graph=graph, notes=[*result.notes, note])
