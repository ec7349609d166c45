"""Where a population's output gain can go in a converted graph, exactly (for the reset-to-zero fits).

A gain on what a population's spikes stand for is moved into the weights they reach (through stateless
nodes and max trees, whose maximum commutes with a positive gain) and, on a skip edge, into the ``r`` of
the population it enters. Used by :mod:`snnx.convert.rategain`.
"""

from __future__ import annotations

import nir

from snnx.convert.finetune import TRAINABLE_OPS

WEIGHTED = (nir.Affine, nir.Conv2d, nir.Linear)


def neighbours(graph: nir.NIRGraph) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """``(predecessors, successors)`` of every node."""
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succs: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
        succs[src].append(dst)
    return preds, succs


def trainable_fed(graph: nir.NIRGraph, name: str, preds: dict[str, list[str]], origin: dict[str, str]) -> bool:
    """Whether IF ``name`` is a ReLU of the ANN: fed by at least one Conv/Gemm/MatMul weight."""
    return any(isinstance(graph.nodes[p], WEIGHTED) and origin.get(p) in TRAINABLE_OPS for p in preds[name])


def gain_plan(graph: nir.NIRGraph, name: str, origin: dict[str, str]) -> tuple[list[str], list[str], list[str]] | None:
    """Where population ``name``'s output gain goes: ``(weighted nodes, skip targets, their own weights)``.

    The walk passes stateless nodes and max trees (fixed weights, populations of origin MaxPool) and
    stops at the ANN's weighted nodes (their weights take the gain) and at populations reached without a
    weight (a skip edge: their ``r`` takes it, and their own weighted inputs its inverse). None when the
    gain cannot be moved there exactly: a node on the way or a weighted node at its end also reads
    something that does not come from ``name``, or a skip target reads something other than ``name``'s
    path and its own weights.
    """
    preds, succs = neighbours(graph)
    region, targets, skips, front = {name}, [], [], list(succs[name])
    while front:
        cur = front.pop()
        if cur in region or cur in targets or cur in skips:
            continue
        node = graph.nodes[cur]
        if isinstance(node, WEIGHTED) and origin.get(cur) in TRAINABLE_OPS:
            targets.append(cur)
        elif isinstance(node, nir.IF) and trainable_fed(graph, cur, preds, origin):
            skips.append(cur)
        elif isinstance(node, (nir.I, nir.Output, nir.Input)):
            return None
        else:
            region.add(cur)
            front += succs[cur]
    # A node on the way (a concatenation's slot, a max tree over several branches) or a weighted node
    # at its end that also reads another population would carry that population's spikes too.
    for t in [*targets, *(r for r in region if r != name)]:
        if any(p not in region for p in preds[t]):
            return None
    divided = []
    for s in skips:
        for p in preds[s]:
            if p in region:
                continue
            # The skip target's other inputs are divided by the gain: they must be its own weights.
            if not isinstance(graph.nodes[p], WEIGHTED) or succs[p] != [s] or p in targets:
                return None
            divided.append(p)
    return targets, skips, divided
