"""The evaluation order of a flat graph and which edges close cycles (``specs/semantics.md`` §6)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import nir

from snnx.errors import ValidationError


@dataclass(frozen=True)
class Schedule:
    """How to execute one time step of a flat graph.

    :ivar order: node names in evaluation order.
    :ivar back_edges: edges that close a cycle; they carry the source's value from the previous step.
    :ivar preds: for each node, its incoming ``(source, delayed)`` pairs in edge order (fan-in sums).
    """

    order: tuple[str, ...]
    back_edges: frozenset[tuple[str, str]]
    preds: dict[str, tuple[tuple[str, bool], ...]]

    @property
    def has_cycles(self) -> bool:
        """Whether any edge closes a cycle (then the graph must be run step by step)."""
        return bool(self.back_edges)


def _depths(succs: dict[str, list[str]], roots: list[str]) -> dict[str, int]:
    """Fewest edges from any root to each reachable node (breadth-first)."""
    depth = {r: 0 for r in roots}
    frontier = list(roots)
    while frontier:
        nxt = []
        for node in frontier:
            for m in succs[node]:
                if m not in depth:
                    depth[m] = depth[node] + 1
                    nxt.append(m)
        frontier = nxt
    return depth


def _components(succs: dict[str, list[str]]) -> dict[str, int]:
    """Strongly connected component id of every node (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    comp: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    counter = 0
    for start in sorted(succs):
        if start in index:
            continue
        work = [(start, 0)]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, i = work[-1]
            if i < len(succs[node]):
                work[-1] = (node, i + 1)
                m = succs[node][i]
                if m not in index:
                    index[m] = low[m] = counter
                    counter += 1
                    stack.append(m)
                    on.add(m)
                    work.append((m, 0))
                elif m in on:
                    low[node] = min(low[node], index[m])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp[m] = index[node]
                        if m == node:
                            break
    return comp


def back_edges(succs: dict[str, list[str]], depth: dict[str, int]) -> set[tuple[str, str]]:
    """The edges that close a cycle (``specs/semantics.md`` §6): source and target on a common cycle,
    and the target no farther from the inputs than the source. Names play no part."""
    comp = _components(succs)
    return {(u, v) for u, vs in succs.items() for v in vs if comp[u] == comp[v] and depth[v] <= depth[u]}


def schedule(graph: nir.NIRGraph) -> Schedule:
    """Compute the deterministic schedule of a flat graph (no nested ``NIRGraph`` nodes).

    ``depth`` is the fewest edges from any Input. An edge closes a cycle (is delayed by one step) when
    its source and target lie on a common cycle and ``depth(target) <= depth(source)``; the order is a
    topological order of the remaining edges, names breaking ties (which cannot change any value).
    """
    succs: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        succs[src].append(dst)
    for name in succs:
        succs[name] = sorted(set(succs[name]))

    # An Input with incoming edges is a kept subgraph boundary (see passes.flatten), not a root.
    targets = {dst for _src, dst in graph.edges}
    inputs = sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Input) and k not in targets)
    if not inputs:
        msg = "the graph has no Input node; add one (nir.Input) feeding the first layer"
        raise ValidationError(msg)

    depth = _depths(succs, inputs)
    unreachable = sorted(set(graph.nodes) - set(depth))
    if unreachable:
        msg = (
            f"node {unreachable[0]!r} is not reachable from any Input node"
            + (f" (nor are {', '.join(map(repr, unreachable[1:4]))})" if len(unreachable) > 1 else "")
            + "; connect it or remove it"
        )
        raise ValidationError(msg, node=unreachable[0])

    back = back_edges(succs, depth)
    indegree = {n: 0 for n in graph.nodes}
    for u, vs in succs.items():
        for v in vs:
            if (u, v) not in back:
                indegree[v] += 1
    ready = [n for n in graph.nodes if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for v in succs[node]:
            if (node, v) not in back:
                indegree[v] -= 1
                if indegree[v] == 0:
                    heapq.heappush(ready, v)

    preds: dict[str, list[tuple[str, bool]]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append((src, (src, dst) in back))
    return Schedule(
        order=tuple(order),
        back_edges=frozenset(back),
        preds={k: tuple(v) for k, v in preds.items()},
    )
