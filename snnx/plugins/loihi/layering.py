"""Layering: a feed-forward DAG of spiking populations as the one chain of layers Loihi runs.

Loihi delivers a layer's spikes one step later, so a population that reads two others only sees
them in the same step when both are equally many layers from the input. :func:`layer_graph` gives
each neuron population a **depth** (the longest path from the Input in neuron hops), inserts
**relays** where an edge skips depths, and merges all populations of one depth into one layer fed by
one dense synapse composed from the stateless nodes (and their fan-in and fan-out) in between.

A relay re-emits its input spike in the same contract step: an IF fed by weight 1 with threshold
1/2 and reset to 0 (or, for reset "subtract", threshold 1 from ``v_init = 1/2``; a LIF with
``r = tau/dt``), so the layered graph means exactly what the original does, and on Loihi it adds the
one-step hop the other path has. That holds only for binary spikes: relaying the graded input, a
non-spiking value or signed spikes is refused, with the reason.

The result is a NIR graph (``snnx.ir.reference`` runs it: the layering is checked against the
original there); a part of the graph that is a chain already (a population fed only by the one
population of the depth before, through a run of stateless nodes) keeps its own nodes, so a
convolution stays a convolution. A merged layer keeps each population's own parameters per neuron:
populations of one depth with different decays make a layer whose decays differ between neurons,
which ``lava`` then places as one Loihi population per decay (``populations.py``, dense layers only).
``specs/backends/lava.md`` § "What Loihi can run" documents it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import nir
import numpy as np

from snnx.ir.nodes import is_neuron, is_spiking
from snnx.ir.prepare import PreparedGraph, prepare
from snnx.ir.reference import apply_stateless
from snnx.ir.semantics import i_init_of, reset_of, set_graph_contract, set_node_contract, signed_of, v_init_of
from snnx.plugins.loihi.cuba import MAX_DENSE_ENTRIES, STATELESS_TYPES, _without_bias

#: The per-neuron parameters of each neuron kind (a merged layer concatenates them).
NEURON_FIELDS: dict[type, tuple[str, ...]] = {
    nir.IF: ("r", "v_threshold", "v_reset"),
    nir.I: ("r",),
    nir.LIF: ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    nir.LI: ("tau", "r", "v_leak"),
    nir.CubaLIF: ("tau_syn", "tau_mem", "r", "v_leak", "w_in", "v_threshold", "v_reset"),
    nir.CubaLI: ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
}
#: Neuron kinds a layer may hold together with relays (a relay is a neuron of its layer's kind).
RELAY_KINDS = (nir.IF, nir.LIF)


@dataclass
class Member:
    """A population (or a relay of one) inside a merged layer: neurons ``start:stop`` of the layer."""

    name: str
    start: int
    stop: int
    relay_of: str | None = None  # the relayed population, for relays
    indices: np.ndarray | None = None  # which of its neurons a relay carries


@dataclass
class LayeredGraph:
    """The chain graph and how it was made (``layers[d]`` are the members of depth ``d + 1``)."""

    graph: nir.NIRGraph
    layers: list[list[Member]] = field(default_factory=list)
    #: The neuron node of each layer in :attr:`graph` (a population's own name, or ``layer<d>``).
    nodes: list[str] = field(default_factory=list)
    changed: bool = False  # False: the graph was a chain already (returned as it is)

    @property
    def relays(self) -> int:
        """Neurons added as relays."""
        return sum(m.stop - m.start for layer in self.layers for m in layer if m.relay_of)

    def summary(self) -> str:
        """One line per layer: its populations and relays."""
        rows = []
        for d, layer in enumerate(self.layers, start=1):
            parts = [f"relay {m.relay_of}[{m.stop - m.start}]" if m.relay_of else f"{m.name}[{m.stop - m.start}]" for m in layer]
            rows.append(f"layer {d}: " + ", ".join(parts))
        return "\n".join(rows)


def _is_chain(graph: nir.NIRGraph) -> bool:
    fan_in: dict[str, int] = {}
    fan_out: dict[str, int] = {}
    for src, dst in graph.edges:
        fan_out[src] = fan_out.get(src, 0) + 1
        fan_in[dst] = fan_in.get(dst, 0) + 1
    return all(v <= 1 for v in fan_in.values()) and all(v <= 1 for v in fan_out.values())


class _Drives:
    """The input of each neuron (or the Output) as ``Σ_S M_S · out(S) + b`` over source populations."""

    def __init__(self, prepared: PreparedGraph, sources: set[str]) -> None:
        self.graph = prepared.graph
        self.shapes = {k: tuple(int(d) for d in v) for k, v in prepared.shapes.items()}
        self.preds = {n: [s for s, _delayed in prepared.schedule.preds.get(n, ())] for n in self.graph.nodes}
        self.sources = sources
        self._basis: dict[tuple[str, str], np.ndarray | None] = {}
        self._bias: dict[str, np.ndarray] = {}

    def sources_of(self, name: str) -> set[str]:
        """The source populations that reach ``name``'s input through stateless nodes only."""
        found, stack, seen = set(), list(self.preds[name]), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in self.sources:
                found.add(n)
            else:
                stack.extend(self.preds[n])
        return found

    def _through(self, name: str, source: str) -> np.ndarray | None:
        """``source``'s identity basis pushed to ``name``'s output (bias-free), or None (no path)."""
        key = (name, source)
        if key not in self._basis:
            if name == source:
                n = int(np.prod(self.shapes[name]))
                out = np.eye(n).reshape(n, *self.shapes[name])
            elif name in self.sources:
                out = None
            else:
                x = self._summed(name, source)
                out = None if x is None else apply_stateless(_without_bias(self.graph.nodes[name]), x)
            self._basis[key] = out
        return self._basis[key]

    def _summed(self, name: str, source: str) -> np.ndarray | None:
        parts = [p for p in (self._through(pred, source) for pred in self.preds[name]) if p is not None]
        return sum(parts[1:], parts[0]) if parts else None

    def _offset(self, name: str) -> np.ndarray:
        """The bias part of ``name``'s output (every source at zero)."""
        if name not in self._bias:
            if name in self.sources:
                self._bias[name] = np.zeros((1, *self.shapes[name]))
            else:
                x = self._in_offset(name)
                self._bias[name] = apply_stateless(self.graph.nodes[name], x)
        return self._bias[name]

    def _in_offset(self, name: str) -> np.ndarray:
        parts = [self._offset(pred) for pred in self.preds[name]]
        return sum(parts[1:], parts[0])

    def matrix(self, name: str, source: str) -> np.ndarray:
        """``M`` with ``input(name) = M · out(source)`` (both flattened)."""
        x = self._summed(name, source)
        n_src = int(np.prod(self.shapes[source]))
        return x.reshape(n_src, -1).T

    def bias(self, name: str) -> np.ndarray:
        """The flat input bias of ``name``."""
        return self._in_offset(name).reshape(-1)


def _chain_run(graph: nir.NIRGraph, preds: dict[str, list[str]], succ: dict[str, list[str]], name: str) -> list[str] | None:
    """The stateless nodes between ``name`` and its one source, when they form a plain run."""
    run: list[str] = []
    cur = name
    while True:
        if len(preds[cur]) != 1:
            return None
        prev = preds[cur][0]
        node = graph.nodes[prev]
        if not isinstance(node, STATELESS_TYPES):
            return run[::-1]
        if len(succ[prev]) != 1:
            return None
        run.append(prev)
        cur = prev


def _flat(value: object, size: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    return np.broadcast_to(arr, (size,)).copy() if arr.size == 1 else arr.reshape(-1).copy()


def _merge_neurons(members: list[tuple[nir.NIRNode | None, int]], dt: float) -> nir.NIRNode:
    """One flat neuron node from ``(population node, size)`` pairs, ``None`` for a relay: populations
    keep their parameters, relays get the relay parameters of the layer's kind."""
    real = [node for node, _n in members if node is not None]
    kind = type(real[0]) if real else nir.IF
    reset = reset_of(real[0]) if real else "value"
    params: dict[str, list[np.ndarray]] = {}
    v_init: list[np.ndarray] = []
    i_init: list[np.ndarray] = []
    fields = NEURON_FIELDS[kind]
    tau_relay = None
    if kind is nir.LIF and real:
        taus = np.unique(np.concatenate([np.ravel(np.asarray(n.tau, dtype=np.float64)) for n in real]))
        tau_relay = float(taus[0])
    for node, size in members:
        if node is not None:
            for key in fields:
                params.setdefault(key, []).append(_flat(getattr(node, key), size))
            v_init.append(_flat(v_init_of(node), size))
            i_init.append(_flat(i_init_of(node), size))
            continue
        # A relay: one input spike (weight 1) is one unit of voltage; it fires in the same step.
        unit = np.ones(size)
        values = {"r": unit / dt, "v_reset": 0 * unit}
        if reset == "subtract":
            values["v_threshold"], start = unit, 0.5 * unit
        else:
            values["v_threshold"], start = 0.5 * unit, 0 * unit
        if kind is nir.LIF:
            values.update(tau=tau_relay * unit, r=tau_relay / dt * unit, v_leak=0 * unit)
        for key in fields:
            params.setdefault(key, []).append(values[key])
        v_init.append(start)
        i_init.append(0 * unit)
    node = kind(**{k: np.concatenate(v) for k, v in params.items()})
    i_init_all = np.concatenate(i_init)
    set_node_contract(
        node, reset=reset if is_spiking(node) else None, v_init=np.concatenate(v_init),
        i_init=i_init_all if np.any(i_init_all) else None, signed=any(signed_of(n) for n in real) or None,
    )
    return node


def _relay_refusal(name: str, node: nir.NIRNode | None, layer_kinds: set[type], reset: str, consumer: str) -> str | None:
    """Why ``name``'s output cannot be relayed into a layer of ``layer_kinds``, or None."""
    if node is None or isinstance(node, nir.Input):
        return (
            f"the graph input {name!r} also feeds {consumer!r}, which is deeper than the first layer: a relay "
            "re-emits only binary spikes, not graded input values (feed deeper layers from a spiking layer)"
        )
    if not is_spiking(node):
        return f"node {name!r} ({type(node).__name__}) is non-spiking and feeds {consumer!r} across layers: a relay re-emits only binary spikes"
    if signed_of(node):
        return f"node {name!r} sends signed spikes to {consumer!r} across layers: a relay re-emits only 0/1 spikes"
    kinds = layer_kinds or {nir.IF}
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind is nir.LIF and reset == "subtract":
            return (
                f"node {name!r} is relayed to {consumer!r} through a LIF layer with reset 'subtract', where a relay "
                "cannot re-emit spikes exactly (its leftover charge decays); use reset to zero (--target loihi)"
            )
        if kind not in RELAY_KINDS:
            return (
                f"node {name!r} is relayed to {consumer!r} through a {kind.__name__} layer, whose neuron cannot "
                "re-emit a spike exactly (only IF and LIF layers take relays)"
            )
    return None


def layer_graph(graph: nir.NIRGraph | PreparedGraph) -> tuple[LayeredGraph | None, list[str]]:
    """The graph as one chain of neuron layers; ``(None, reasons)`` when impossible.

    A graph that is a chain already, or has cycles (left to the fold's recurrent layers), comes back
    as it is (``changed=False``).
    """
    prepared = prepare(graph)
    g = prepared.graph
    if prepared.has_cycles or _is_chain(g):
        return LayeredGraph(graph=g), []
    inputs = [n for n, node in g.nodes.items() if isinstance(node, nir.Input)]
    outputs = [n for n, node in g.nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        return None, [
            f"needs exactly one Input and one Output node (found inputs {sorted(inputs)}, outputs {sorted(outputs)}): "
            "Loihi runs one chain of layers from one input to one output"
        ]
    reasons = [
        f"node {n!r}: {type(node).__name__} has no Loihi CUBA equivalent"
        for n, node in sorted(g.nodes.items())
        if not (is_neuron(node) or isinstance(node, (*STATELESS_TYPES, nir.Input, nir.Output)))
    ]
    if reasons:
        return None, reasons
    source_names = {inputs[0], *(n for n, node in g.nodes.items() if is_neuron(node))}
    drives = _Drives(prepared, source_names)
    out_name = outputs[0]
    # The layer ending the chain: the neuron feeding the Output directly, or a readout synapse.
    out_preds = drives.preds[out_name]
    readout = not (len(out_preds) == 1 and out_preds[0] in source_names and out_preds[0] != inputs[0])
    # Populations reaching the output, with their sources, in a topological order.
    needed: dict[str, set[str]] = {}
    stack = [out_name]
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed[n] = drives.sources_of(n) if n != out_name or readout else {out_preds[0]}
        stack.extend(s for s in needed[n] if s != inputs[0])
    order = [n for n in prepared.schedule.order if n in needed and n != out_name]
    depth = {inputs[0]: 0}
    for n in order:
        depth[n] = 1 + max(depth[s] for s in needed[n])
    consumers = [*order, out_name] if readout else order
    if readout:
        depth[out_name] = 1 + max(depth[s] for s in needed[out_name])
    top = max(depth[n] for n in consumers)
    by_depth: dict[int, list[str]] = {d: [n for n in order if depth[n] == d] for d in range(1, top + 1)}
    for d, names in by_depth.items():
        kinds = {type(g.nodes[n]) for n in names}
        resets = {reset_of(g.nodes[n]) for n in names}
        if len(kinds) > 1 or len(resets) > 1:
            reasons.append(
                f"nodes {names} are all {d} layers from the input, so they form one Loihi layer, which has one neuron "
                f"kind and reset (got {sorted(k.__name__ for k in kinds)}, resets {sorted(resets)})"
            )
    if reasons:
        return None, reasons
    # Which neurons of each source a layer beyond the next reads (a relay carries only those), and up to where.
    reads: dict[str, list[tuple[int, np.ndarray]]] = {}  # source -> (last relay depth, neurons read)
    for c in consumers:
        for s in sorted(needed[c]):
            if depth[s] >= depth[c] - 1:
                continue
            whys = [
                _relay_refusal(
                    s, g.nodes.get(s), {type(g.nodes[n]) for n in layer}, reset_of(g.nodes[layer[0]]) if layer else "value", c
                )
                for layer in (by_depth[d] for d in range(depth[s] + 1, depth[c]))
            ]
            whys = [w for w in [*whys, _size_refusal(drives, c, s)] if w]
            if whys:
                reasons.append(whys[0])
                continue
            reads.setdefault(s, []).append((depth[c] - 1, np.any(drives.matrix(c, s) != 0, axis=0)))
    if reasons:
        return None, list(dict.fromkeys(reasons))
    plan = _Plan(prepared, drives, by_depth, needed, depth, reads, inputs[0], out_name)
    return plan.build(readout)


def _size_refusal(drives: _Drives, consumer: str, source: str) -> str | None:
    n_in = int(np.prod(drives.shapes[source]))
    n_out = int(np.prod(drives.shapes[drives.preds[consumer][0]]))
    if n_in * n_out <= MAX_DENSE_ENTRIES:
        return None
    return (
        f"node {consumer!r}: its input from {source!r} would be a {n_out}x{n_in} dense synapse (more than "
        f"{MAX_DENSE_ENTRIES} entries); only a chain part of the graph keeps its convolutions"
    )


@dataclass
class _Plan:
    prepared: PreparedGraph
    drives: _Drives
    by_depth: dict[int, list[str]]
    needed: dict[str, set[str]]
    depth: dict[str, int]
    reads: dict[str, list[tuple[int, np.ndarray]]]
    input_name: str
    out_name: str

    def _members(self, d: int) -> list[Member]:
        members: list[Member] = []
        offset = 0
        for n in self.by_depth[d]:
            size = int(np.prod(self.drives.shapes[n]))
            members.append(Member(n, offset, offset + size))
            offset += size
        for s in sorted(self.reads, key=lambda s: (self.depth[s], s)):
            # The relay of depth d carries what the layers after d read of s.
            masks = [mask for last, mask in self.reads[s] if self.depth[s] < d <= last]
            if masks:
                idx = np.flatnonzero(np.logical_or.reduce(masks))
                members.append(Member(f"{s}_relay{d}", offset, offset + idx.size, relay_of=s, indices=idx))
                offset += idx.size
        return members

    def build(self, readout: bool) -> tuple[LayeredGraph | None, list[str]]:
        g, drives = self.prepared.graph, self.drives
        shapes = dict(drives.shapes)
        succ: dict[str, list[str]] = {n: [] for n in g.nodes}
        for a, b in g.edges:
            succ[a].append(b)
        nodes: dict[str, nir.NIRNode] = {self.input_name: copy.deepcopy(g.nodes[self.input_name])}
        edges: list[tuple[str, str]] = []
        layers: list[list[Member]] = []
        names: list[str] = []
        reasons: list[str] = []
        prev_name = self.input_name
        prev_members = [Member(self.input_name, 0, int(np.prod(shapes[self.input_name])))]
        kept = True  # the previous layer kept its own nodes (and NIR shape)
        for d in range(1, max(self.by_depth) + 1):
            members = self._members(d)
            if not members:  # the readout's own depth: its synapse is built after the neuron layers
                continue
            layers.append(members)
            lone = members[0].name if len(members) == 1 and members[0].relay_of is None else None
            run = _chain_run(g, drives.preds, succ, lone) if lone else None
            if (
                run is not None and kept and len(prev_members) == 1 and self.needed[lone] == {prev_members[0].name}
                and drives.preds[(run or [lone])[0]] == [prev_name]
            ):
                # A chain part: its own nodes, so a convolution stays a convolution.
                chain = [*run, lone]
                nodes.update((n, copy.deepcopy(g.nodes[n])) for n in chain)
                edges += list(zip([prev_name, *chain[:-1]], chain, strict=True))
                names.append(lone)
                prev_name, prev_members = lone, members
                continue
            size = members[-1].stop
            synapse = self._synapse(members, prev_members, size, reasons)
            if synapse is None:
                return None, reasons
            name = lone or _fresh(g, nodes, f"layer{d}")
            syn = _fresh(g, nodes, f"{name}_synapse")
            pieces = [(None if m.relay_of else g.nodes[m.name], m.stop - m.start) for m in members]
            source = _flat_source(nodes, edges, prev_name, shapes[prev_name], g)
            nodes[syn] = synapse
            nodes[name] = _merge_neurons(pieces, self.prepared.dt)
            edges += [(source, syn), (syn, name)]
            shapes[name] = (size,)
            names.append(name)
            prev_name, prev_members, kept = name, members, False
        if readout:
            size = int(np.prod(shapes[drives.preds[self.out_name][0]]))
            synapse = self._synapse([Member(self.out_name, 0, size)], prev_members, size, reasons)
            if synapse is None:
                return None, reasons
            source = _flat_source(nodes, edges, prev_name, shapes[prev_name], g)
            syn = _fresh(g, nodes, "readout_synapse")
            nodes[syn] = synapse
            edges.append((source, syn))
            prev_name, out_shape = syn, (size,)
        else:
            out_shape = shapes[prev_name]
        nodes[self.out_name] = nir.Output(output_type={"output": np.array(out_shape)})
        edges.append((prev_name, self.out_name))
        graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
        set_graph_contract(graph, dt=self.prepared.dt)
        return LayeredGraph(graph=graph, layers=layers, nodes=names, changed=True), []

    def _synapse(self, members: list[Member], prev: list[Member], size: int, reasons: list[str]) -> nir.NIRNode | None:
        """The dense synapse (``Affine``/``Linear``) from the previous layer into ``members``."""
        weight = np.zeros((size, prev[-1].stop))
        bias = np.zeros(size)
        # Where each source's neurons sit in the previous layer: the population itself or its relay.
        where = {
            (m.relay_of or m.name): (m, m.indices if m.relay_of else np.arange(m.stop - m.start)) for m in prev
        }
        for m in members:
            if m.relay_of is not None:
                src, idx = where[m.relay_of]
                rows = np.searchsorted(idx, m.indices)
                weight[m.start + np.arange(m.indices.size), src.start + rows] = 1.0
                continue
            bias[m.start:m.stop] = self.drives.bias(m.name)
            for s in sorted(self.needed[m.name]):
                why = _size_refusal(self.drives, m.name, s)
                if why:
                    reasons.append(why)
                    return None
                src, idx = where[s]
                weight[m.start:m.stop, src.start:src.stop] += self.drives.matrix(m.name, s)[:, idx]
        return nir.Affine(weight=weight, bias=bias) if np.any(bias) else nir.Linear(weight=weight)


def _fresh(graph: nir.NIRGraph, nodes: dict[str, nir.NIRNode], base: str) -> str:
    """``base``, or ``base_2``, ``base_3``, ... when the original graph or the new one has that name."""
    name, k = base, 1
    while name in graph.nodes or name in nodes:
        k += 1
        name = f"{base}_{k}"
    return name


def _flat_source(
    nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]], name: str, shape: tuple[int, ...], graph: nir.NIRGraph,
) -> str:
    """``name``, or a Flatten after it when its output is not flat (a dense synapse reads a vector)."""
    if len(shape) <= 1:
        return name
    flat = _fresh(graph, nodes, f"{name}_flat")
    nodes[flat] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
    edges.append((name, flat))
    return flat
