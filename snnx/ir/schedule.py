"""The evaluation order of a flat graph and which edges close cycles (``specs/semantics.md`` §6)."""

from __future__ import annotations

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


def schedule(graph: nir.NIRGraph) -> Schedule:
    """Compute the deterministic schedule of a flat graph (no nested ``NIRGraph`` nodes).

    DFS from the Input nodes in sorted name order, successors in sorted name order; an edge to a node on
    the DFS stack is a back edge; the order is the reverse post-order.
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

    on_stack: set[str] = set()
    done: set[str] = set()
    post: list[str] = []
    back: set[tuple[str, str]] = set()
    for root in inputs:
        if root in done:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_stack.add(root)
        while stack:
            node, idx = stack[-1]
            if idx < len(succs[node]):
                stack[-1] = (node, idx + 1)
                nxt = succs[node][idx]
                if nxt in on_stack:
                    back.add((node, nxt))
                elif nxt not in done:
                    on_stack.add(nxt)
                    stack.append((nxt, 0))
            else:
                stack.pop()
                on_stack.discard(node)
                done.add(node)
                post.append(node)

    unreachable = sorted(set(graph.nodes) - done)
    if unreachable:
        msg = (
            f"node {unreachable[0]!r} is not reachable from any Input node"
            + (f" (nor are {', '.join(map(repr, unreachable[1:4]))})" if len(unreachable) > 1 else "")
            + "; connect it or remove it"
        )
        raise ValidationError(msg, node=unreachable[0])

    preds: dict[str, list[tuple[str, bool]]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append((src, (src, dst) in back))
    return Schedule(
        order=tuple(reversed(post)),
        back_edges=frozenset(back),
        preds={k: tuple(v) for k, v in preds.items()},
    )
