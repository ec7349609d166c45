"""Small graph rewrites: pure functions from a NIR graph to a new NIR graph."""

from __future__ import annotations

import copy

import nir

from snnx.errors import ValidationError


def input_names(graph: nir.NIRGraph) -> list[str]:
    """The graph's top-level Input names, sorted: the inputs a caller feeds.

    They are also the Input names of ``flatten(graph)``, which keeps top-level Inputs and splices out
    the subgraphs' own, so no flattening (and copying) is needed to list them.
    """
    return sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))


def _endpoint(name: str, sub: nir.NIRGraph, kind: type, where: str) -> str:
    """The single Input (or Output) node of a subgraph that an edge to/from ``name`` means."""
    candidates = sorted(k for k, n in sub.nodes.items() if isinstance(n, kind))
    if len(candidates) != 1:
        role = "Input" if kind is nir.Input else "Output"
        msg = (
            f"edge {where} connects to subgraph {name!r}, which has {len(candidates)} {role} nodes "
            f"({', '.join(candidates) or 'none'}); name one explicitly, e.g. '{name}.<{role.lower()}>'"
        )
        raise ValidationError(msg, node=name)
    return f"{name}.{candidates[0]}"


def flatten(graph: nir.NIRGraph, *, splice_io: bool = True) -> nir.NIRGraph:
    """Inline nested ``NIRGraph`` nodes (``specs/semantics.md`` section 7).

    Inner nodes are renamed ``outer.inner``; the subgraphs' own Input/Output nodes are spliced out
    (``splice_io=False`` keeps them as pass-through nodes, so validation can check their declared
    shapes). The top-level Input/Output nodes stay. The result shares no mutable state with ``graph``.
    """
    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return copy.deepcopy(graph)

    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    spliced: set[str] = set()
    subgraphs: dict[str, nir.NIRGraph] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            inner = flatten(node, splice_io=splice_io)
            subgraphs[name] = inner
            for inner_name, inner_node in inner.nodes.items():
                full = f"{name}.{inner_name}"
                nodes[full] = inner_node
                if splice_io and isinstance(inner_node, (nir.Input, nir.Output)):
                    spliced.add(full)
            edges.extend((f"{name}.{a}", f"{name}.{b}") for a, b in inner.edges)
        else:
            nodes[name] = copy.deepcopy(node)

    for src, dst in graph.edges:
        where = f"({src!r}, {dst!r})"
        if src in subgraphs:
            src = _endpoint(src, subgraphs[src], nir.Output, where)
        if dst in subgraphs:
            dst = _endpoint(dst, subgraphs[dst], nir.Input, where)
        edges.append((src, dst))

    # Splice identity nodes: p -> X -> s becomes p -> s (fan-in sums are unchanged).
    for ident in sorted(spliced):
        preds = [a for a, b in edges if b == ident]
        succs = [b for a, b in edges if a == ident]
        edges = [(a, b) for a, b in edges if ident not in (a, b)]
        edges.extend((p, s) for p in preds for s in succs)
        del nodes[ident]

    return nir.NIRGraph(
        nodes=nodes, edges=edges, metadata=copy.deepcopy(dict(graph.metadata or {})), type_check=False
    )
