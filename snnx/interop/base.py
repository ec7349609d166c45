"""Interop profiles: how one framework's NIR exporter and importer read the graph.

A :class:`Profile` knows one producer/consumer framework. ``import_`` rewrites a file that framework
wrote into the snnx contract (``specs/semantics.md``) so the reference reproduces the framework's own
forward; ``export`` rewrites a contract graph into what the framework's importer (default arguments)
runs with the reference's spikes. Either may be absent. Profiles are registered through the
``snnx_register_interop`` hook, built-in ones exactly like third-party ones (``specs/interop.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from snnx.errors import PluginError, SnnxError
from snnx.ir.nodes import is_neuron
from snnx.ir.passes import flatten


class InteropError(SnnxError):
    """A file cannot be imported from, or a graph exported for, a framework; names node and reason."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message if node is None else f"node {node!r}: {message}")
        self.node = node


@dataclass
class Detection:
    """How strongly a graph looks like one producer's output, and why."""

    profile: str
    confidence: float  # 0 = no sign, 1 = certain (e.g. the producer wrote its name into the metadata)
    reason: str


@dataclass
class Converted:
    """A rewritten graph and what the rewrite assumed or changed, for the user to read."""

    graph: nir.NIRGraph
    notes: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)
    profile: str | None = None  # the profile that did the rewrite (what --from auto resolved to)


class Profile:
    """Base class of an interop profile; override what the framework supports.

    :cvar name: the ``--from`` / ``--for`` name.
    :cvar verified: ``{package: version}`` the conventions were checked against (shown by the CLI).
    """

    name: str = ""
    verified: dict[str, str] = {}
    plugin: str = "?"

    def detect(self, graph: nir.NIRGraph) -> Detection:
        """How much ``graph`` looks like this framework's exporter output (default: no opinion)."""
        return Detection(self.name, 0.0, "no detector")

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        """Rewrite a file this framework wrote into the snnx contract. ``assume`` overrides defaults."""
        msg = f"{self.name} has no importer profile"
        raise InteropError(msg)

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Rewrite a contract graph for this framework's importer, or raise :class:`InteropError`."""
        msg = f"{self.name} has no exporter profile"
        raise InteropError(msg)

    @property
    def can_import(self) -> bool:
        """Whether the profile overrides :meth:`import_`."""
        return type(self).import_ is not Profile.import_

    @property
    def can_export(self) -> bool:
        """Whether the profile overrides :meth:`export`."""
        return type(self).export is not Profile.export


@dataclass
class InteropRegistrar:
    """The ``register`` callback handed to ``snnx_register_interop``."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    current_plugin: str = "?"

    def __call__(self, profile: Profile) -> None:
        if not isinstance(profile, Profile) or not profile.name:
            msg = f"plugin {self.current_plugin!r} registered {profile!r}, not a named snnx interop Profile"
            raise PluginError(msg)
        if profile.name in self.profiles or profile.name == "auto":
            msg = f"plugin {self.current_plugin!r} registered interop profile {profile.name!r}, a name already taken"
            raise PluginError(msg)
        profile.plugin = self.current_plugin
        self.profiles[profile.name] = profile


# -- helpers shared by the profiles -------------------------------------------------------------------
def f64(value: Any) -> np.ndarray:
    """A parameter as a float64 array (tensors and lists too)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def copy_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A deep copy the profiles may edit in place."""
    return copy.deepcopy(graph)


def neurons(graph: nir.NIRGraph, kinds: tuple[type, ...] | None = None) -> list[tuple[str, nir.NIRNode]]:
    """``(name, node)`` of every neuron of a flat graph (or of the NIR classes ``kinds``), in name order."""
    keep = is_neuron if kinds is None else (lambda n: isinstance(n, kinds))
    return [(k, n) for k, n in sorted(graph.nodes.items()) if keep(n)]


def flat_neurons(
    graph: nir.NIRGraph, kinds: tuple[type, ...] | None = None
) -> tuple[nir.NIRGraph, list[tuple[str, nir.NIRNode]]]:
    """What a detector looks at: ``graph`` with subgraphs inlined, and its neurons (see :func:`neurons`)."""
    flat = flatten(graph)
    return flat, neurons(flat, kinds)


def start_import(graph: nir.NIRGraph) -> Converted:
    """Where every importer starts: a flat copy of the peer's file that the profile may edit in place,
    with the batch dimensions some exporters write into Input/Output types dropped (:func:`drop_batch_dims`)."""
    out = Converted(graph=flatten(copy_graph(graph)))
    drop_batch_dims(out.graph, out)
    return out


def all_close(value: Any, target: Any, rtol: float = 1e-5) -> bool:
    """Whether a parameter equals ``target`` everywhere (float32 exporters round)."""
    a, b = np.broadcast_arrays(f64(value), f64(target))
    return bool(np.allclose(a, b, rtol=rtol, atol=0))


def unique_name(graph: nir.NIRGraph, base: str) -> str:
    """``base``, or ``base_2``, ... whichever is not a node of ``graph`` yet."""
    name, i = base, 2
    while name in graph.nodes:
        name, i = f"{base}_{i}", i + 1
    return name


def add_feedback(graph: nir.NIRGraph, node: str, scale: np.ndarray, delay_steps: int, dt: float, tag: str) -> None:
    """Feed ``scale * s[t-1-delay_steps]`` of a spiking node back into its own input.

    The edge into ``node`` closes a cycle, so it carries the previous step's value (semantics §3);
    ``delay_steps`` adds a NIR Delay of that many steps in front. Used to express reset variants the
    contract's two reset modes do not have, with existing nodes only.
    """
    src = node
    if delay_steps:
        dname = unique_name(graph, f"{node}.{tag}_delay")
        graph.nodes[dname] = nir.Delay(delay=np.full(np.shape(scale) or (1,), delay_steps * dt))
        graph.edges.append((src, dname))
        src = dname
    sname = unique_name(graph, f"{node}.{tag}")
    graph.nodes[sname] = nir.Scale(scale=np.asarray(scale, dtype=np.float64))
    graph.edges.append((src, sname))
    graph.edges.append((sname, node))


_IN_RANK = {nir.Affine: 1, nir.Linear: 1, nir.Conv1d: 2, nir.Conv2d: 3}


def _io_shape(node: nir.NIRNode) -> list[int]:
    types = node.input_type if isinstance(node, nir.Input) else node.output_type
    return [int(s) for s in np.asarray(next(iter(types.values()))).ravel()]


def drop_batch_dims(g: nir.NIRGraph, out: Converted) -> None:
    """Remove a leading batch dimension some exporters leave in Input/Output types (nirtorch traces
    with a batched sample). NIR types never include the batch (semantics §2); an Input whose leading
    1 makes it one rank too many for the node it feeds is fixed, and its graph's Outputs with it."""
    fixed = False
    for name, node in list(g.nodes.items()):
        if not isinstance(node, nir.Input):
            continue
        shape = _io_shape(node)
        succ = [g.nodes[b] for a, b in g.edges if a == name]
        ranks = {_IN_RANK[type(s)] for s in succ if type(s) in _IN_RANK}
        if len(shape) >= 2 and shape[0] == 1 and ranks == {len(shape) - 1}:
            g.nodes[name] = nir.Input(input_type={"input": np.asarray(shape[1:])}, metadata=node.metadata)
            out.notes.append(f"{name}: dropped the batch dimension from the Input type {shape}")
            fixed = True
    if not fixed:
        return
    for name, node in list(g.nodes.items()):
        if isinstance(node, nir.Output):
            shape = _io_shape(node)
            rank = _source_rank(g, name)
            new = list(shape)
            # Leading 1s beyond the source's rank are batch (and, for Rockpool, time) dimensions.
            while len(new) >= 2 and new[0] == 1 and (rank is None or len(new) > rank):
                new = new[1:]
                if rank is None:
                    break
            if new != shape:
                g.nodes[name] = nir.Output(output_type={"output": np.asarray(new)}, metadata=node.metadata)
                out.notes.append(f"{name}: dropped batch/time dimensions from the Output type {shape}")


def _source_rank(g: nir.NIRGraph, name: str) -> int | None:
    """Rank of the per-sample output of the node feeding ``name``, where its parameters tell it."""
    sources = [a for a, b in g.edges if b == name]
    if len(sources) != 1:
        return None
    node = g.nodes[sources[0]]
    if isinstance(node, (nir.Affine, nir.Linear)):
        return 1
    if isinstance(node, nir.Conv2d):
        return 3
    value = getattr(node, "v_threshold", getattr(node, "tau", None))
    if value is not None and np.ndim(f64(value)) >= 1:
        return int(np.ndim(f64(value)))
    return None


# -- export helpers: rewrites that keep the reference's meaning but suit an importer ------------------
def preds(g: nir.NIRGraph, name: str) -> list[str]:
    """Sources of the edges into ``name``."""
    return [a for a, b in g.edges if b == name]


def succs(g: nir.NIRGraph, name: str) -> list[str]:
    """Targets of the edges out of ``name``."""
    return [b for a, b in g.edges if a == name]


def diag_node(shape: tuple[int, ...], gain: np.ndarray, offset: np.ndarray, why: str, name: str) -> nir.NIRNode:
    """A stateless node computing ``gain*x + offset`` per neuron that every torch importer maps:
    a diagonal Affine for vectors, a 1x1 Conv2d for per-channel (C, H, W) values."""
    if len(shape) == 1:
        g = np.broadcast_to(gain, shape)
        return nir.Affine(weight=np.diag(g), bias=np.broadcast_to(offset, shape).copy())
    if len(shape) == 3:
        per = [np.broadcast_to(v, shape).reshape(shape[0], -1) for v in (gain, offset)]
        if all(np.all(v == v[:, :1]) for v in per):
            c = shape[0]
            return nir.Conv2d(input_shape=np.asarray(shape[1:]), weight=np.diag(per[0][:, 0]).reshape(c, c, 1, 1),
                              stride=1, padding=0, dilation=1, groups=1, bias=per[1][:, 0].copy())
    raise InteropError(f"{why}, and no layer of shape {shape} can carry a per-neuron gain", node=name)


def input_transform(g: nir.NIRGraph, name: str, gain: Any, offset: Any, why: str) -> None:
    """Make node ``name`` see ``gain*x + offset`` (per neuron) instead of its input ``x``.

    The input is a weighted sum, so when one Affine/Linear/Conv2d feeds only this node its rows and
    bias absorb the transform; otherwise a diagonal Affine (1x1 Conv2d for conv maps) is inserted in
    front. Both are exact up to float rounding of the weights. Raises :class:`InteropError` naming the
    node where neither is possible (a gain that varies inside a conv channel).
    """
    gain, offset = f64(gain), f64(offset)
    if np.all(gain == 1.0) and np.all(offset == 0.0):
        return
    sources = preds(g, name)
    src = sources[0] if len(sources) == 1 else None
    node = g.nodes[src] if src is not None and len(succs(g, src)) == 1 else None
    if isinstance(node, (nir.Affine, nir.Linear)):
        n_out = f64(node.weight).shape[0]
        row, off = np.broadcast_to(gain, (n_out,)), np.broadcast_to(offset, (n_out,))
        bias = f64(node.bias) if isinstance(node, nir.Affine) else np.zeros(n_out)
        weight = f64(node.weight) * row[:, None]
        g.nodes[src] = nir.Affine(weight=weight, bias=bias * row + off) if np.any(off) or isinstance(
            node, nir.Affine) else nir.Linear(weight=weight)
        return
    if isinstance(node, nir.Conv2d):
        c_out = f64(node.weight).shape[0]
        per = [np.broadcast_to(v, (c_out, 1, 1)) if v.ndim < 3 else v for v in (gain, offset)]
        flat_per = [v.reshape(v.shape[0], -1) for v in per]
        if all(np.all(v == v[:, :1]) for v in flat_per):
            ch, off = (np.broadcast_to(v[:, 0], (c_out,)) for v in flat_per)
            g.nodes[src] = nir.Conv2d(
                input_shape=node.input_shape, weight=f64(node.weight) * ch[:, None, None, None],
                stride=node.stride, padding=node.padding, dilation=node.dilation, groups=node.groups,
                bias=f64(node.bias) * ch + off,
            )
            return
    from snnx.ir.validate import infer_shapes

    shape = tuple(int(s) for s in infer_shapes(g)[name])
    new = unique_name(g, f"{name}.in_gain")
    g.nodes[new] = diag_node(shape, gain, offset, why, name)
    g.edges[:] = [(a, new if b == name else b) for a, b in g.edges] + [(new, name)]


def fold_gain(g: nir.NIRGraph, name: str, gain: Any, why: str) -> None:
    """Multiply the input of node ``name`` by ``gain`` per neuron (see :func:`input_transform`)."""
    input_transform(g, name, gain, 0.0, why)


def scale_successors(g: nir.NIRGraph, name: str, factor: float, why: str) -> None:
    """Multiply the output of stateless node ``name`` by ``factor`` inside the weighted layers after it
    (through Flatten nodes), or in a 1x1 scaling layer inserted after it when none follows."""
    for nxt in succs(g, name):
        node = g.nodes[nxt]
        only = len(preds(g, nxt)) == 1
        if isinstance(node, nir.Flatten) and only:
            scale_successors(g, nxt, factor, why)
        elif isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d)) and only:
            node.weight = f64(node.weight) * factor  # a uniform factor on the input is one on the weights
        else:
            from snnx.ir.validate import infer_shapes

            shape = tuple(int(s) for s in infer_shapes(g)[name])
            new = unique_name(g, f"{name}.scale")
            g.nodes[new] = diag_node(shape, np.asarray(factor), np.asarray(0.0), why, name)
            g.edges[:] = [(name, new) if (a, b) == (name, nxt) else (a, b) for a, b in g.edges] + [(new, nxt)]


def swap_pool(g: nir.NIRGraph, name: str, to: type) -> None:
    """Replace a SumPool2d by an AvgPool2d (or back), moving the ``kH*kW`` factor into the next layer."""
    node = g.nodes[name]
    k = float(np.prod(np.asarray(node.kernel_size)))
    factor = k if to is nir.AvgPool2d else 1.0 / k
    why = f"{type(node).__name__} is written as {to.__name__} for this importer"
    scale_successors(g, name, factor, why)
    g.nodes[name] = to(kernel_size=np.asarray(node.kernel_size), stride=np.asarray(node.stride),
                       padding=np.asarray(node.padding))


def exported(g: nir.NIRGraph, target: str) -> nir.NIRGraph:
    """Mark a graph as rewritten for ``target``'s importer: the snnx contract no longer describes it
    (time constants and thresholds follow the importer's conventions), so its metadata is dropped."""
    g.metadata = {"snnx_export": {"for": target}}
    for node in g.nodes.values():
        if isinstance(getattr(node, "metadata", None), dict):
            node.metadata.pop("snnx", None)
    return g


def uniform(value: Any) -> bool:
    """Whether every element of a parameter is the same."""
    a = f64(value)
    return a.size == 0 or bool(np.all(a == a.flat[0]))


def export_checks(
    graph: nir.NIRGraph, target: str, supported: tuple[type, ...], *, cycles: bool = False,
    subtract: bool = False,
) -> tuple[nir.NIRGraph, float]:
    """The flat copy of a contract graph and its dt, after refusing what ``target``'s importer cannot
    load: node kinds it has no mapping for, cycles, reset modes, non-zero initial state."""
    from snnx.ir.schedule import schedule
    from snnx.ir.semantics import dt_of, i_init_of, reset_of, v_init_of

    dt = dt_of(graph)
    g = flatten(graph)
    for name, node in sorted(g.nodes.items()):
        if not isinstance(node, supported):
            raise InteropError(f"{target}'s NIR importer has no mapping for {type(node).__name__}", node=name)
        if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)) and reset_of(node) == "subtract" and not subtract:
            raise InteropError(f"reset 'subtract': {target}'s importer builds every neuron with a reset to a value",
                               node=name)
        if np.any(v_init_of(node) != 0) or np.any(i_init_of(node) != 0):
            raise InteropError(f"non-zero v_init/i_init: {target}'s importer starts every state at zero", node=name)
    if not cycles and schedule(g).back_edges:
        src, dst = sorted(schedule(g).back_edges)[0]
        raise InteropError(f"the edge {src} -> {dst} closes a cycle, which {target}'s importer does not run "
                           "with the contract's one-step delay", node=dst)
    return g, dt



def negative_flatten_dims(g: nir.NIRGraph, name: str, out: Converted) -> None:
    """Write a Flatten's dims counted from the end: importers that pass NIR's per-sample dims straight
    to ``torch.nn.Flatten`` (which counts the batch) then flatten the same axes, and NIR reads the
    file the same way."""
    from snnx.ir.validate import infer_shapes

    node = g.nodes[name]
    src = preds(g, name)
    rank = len(infer_shapes(g)[src[0]]) if src else 0
    start, end = int(node.start_dim), int(node.end_dim)
    if start >= 0 or end >= 0:
        node.start_dim = start - rank if start >= 0 else start
        node.end_dim = end - rank if end >= 0 else end
        out.notes.append(f"{name}: Flatten dims written counted from the end (the importer's torch.nn.Flatten "
                         "counts the batch dimension)")


def param_layout(ns: list[tuple[str, nir.NIRNode]]) -> str:
    """``"scalar"`` when every neuron stores 0-d thresholds (Norse's cells, parameters left at their
    defaults), ``"full"`` when every one stores a value per neuron (Sinabs, SpikingJelly), else ``"mixed"``."""
    shapes = [np.shape(f64(getattr(n, "v_threshold", getattr(n, "tau", 0)))) for _, n in ns]
    if all(len(s) == 0 for s in shapes):
        return "scalar"
    if all(int(np.prod(s)) > 1 for s in shapes):
        return "full"
    return "mixed"


_NEURON_PARAMS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


def full_shapes(g: nir.NIRGraph) -> nir.NIRGraph:
    """Broadcast every neuron parameter to the neuron's shape, and fill in unknown conv input shapes.

    Producers may store 0-d parameters (Norse's defaults); ``nir.read`` type-checks a graph from its
    parameters' shapes and then refuses the file, and every file snnx writes must open with it.
    """
    from snnx.ir.validate import infer_shapes

    shapes = infer_shapes(g)
    for name, node in g.nodes.items():
        if isinstance(node, (nir.Conv1d, nir.Conv2d)) and node.input_shape is None:
            # Norse's and Sinabs' exporters leave it None, which nir.write cannot store.
            src = preds(g, name)
            node.input_shape = np.asarray(shapes[src[0]][1:]) if src else None
        if not isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.CubaLI, nir.I)):
            continue
        shape = tuple(shapes[name])
        params = {k: v for k, v in vars(node).items() if k in _NEURON_PARAMS and v is not None}
        if all(np.shape(v) == shape for v in params.values()):
            continue
        rebuilt = type(node)(**{k: np.broadcast_to(f64(v), shape).copy() for k, v in params.items()})
        rebuilt.metadata = node.metadata
        g.nodes[name] = rebuilt
    return g
