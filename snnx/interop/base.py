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


def neurons(graph: nir.NIRGraph, kinds: tuple[type, ...] = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.CubaLI, nir.I)):
    """``(name, node)`` of every neuron of a flat graph, in name order."""
    return [(k, n) for k, n in sorted(graph.nodes.items()) if isinstance(n, kinds)]


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


def fold_gain(g: nir.NIRGraph, name: str, gain: Any, why: str) -> None:
    """Multiply the input of neuron ``name`` by ``gain`` (per neuron) inside its only predecessor.

    The neuron's input is a weighted sum, so scaling the rows (and bias) of the Affine/Linear/Conv2d
    that feeds it, and nothing else, changes nothing else. Raises :class:`InteropError` naming the
    node where the predecessor is shared or not a weighted layer.
    """
    gain = f64(gain)
    if np.allclose(gain, 1.0, rtol=0, atol=0):
        return
    sources = preds(g, name)
    if len(sources) != 1 or len(succs(g, sources[0])) != 1:
        raise InteropError(f"{why}, which needs a weighted layer feeding only this neuron", node=name)
    src = sources[0]
    node = g.nodes[src]
    if isinstance(node, (nir.Affine, nir.Linear)):
        n_out = f64(node.weight).shape[0]
        row = np.broadcast_to(gain, (n_out,)) if gain.size in (1, n_out) else None
        if row is None:
            raise InteropError(f"{why}: gain shape {gain.shape} does not match {src}", node=name)
        weight = f64(node.weight) * row[:, None]
        if isinstance(node, nir.Affine):
            g.nodes[src] = nir.Affine(weight=weight, bias=f64(node.bias) * row)
        else:
            g.nodes[src] = nir.Linear(weight=weight)
    elif isinstance(node, nir.Conv2d):
        c_out = f64(node.weight).shape[0]
        full = np.broadcast_to(gain, (c_out, 1, 1)) if gain.ndim < 3 else gain
        per_channel = full.reshape(full.shape[0], -1)
        if gain.ndim == 3 and not np.all(per_channel == per_channel[:, :1]):
            raise InteropError(f"{why}, but the gain varies inside a channel of convolution {src}", node=name)
        ch = np.broadcast_to(per_channel[:, 0] if gain.ndim == 3 else np.ravel(gain), (c_out,))
        g.nodes[src] = nir.Conv2d(
            input_shape=node.input_shape, weight=f64(node.weight) * ch[:, None, None, None],
            stride=node.stride, padding=node.padding, dilation=node.dilation, groups=node.groups,
            bias=f64(node.bias) * ch,
        )
    else:
        raise InteropError(f"{why}, but its input comes from a {type(node).__name__}, not a weighted layer", node=name)


def scale_successors(g: nir.NIRGraph, name: str, factor: float, why: str) -> None:
    """Multiply the output of stateless node ``name`` by ``factor`` inside the weighted layers after it
    (through Flatten nodes), so ``name`` may be replaced by a node that differs by that factor."""
    for nxt in succs(g, name):
        node = g.nodes[nxt]
        if isinstance(node, nir.Flatten) and len(preds(g, nxt)) == 1:
            scale_successors(g, nxt, factor, why)
        elif isinstance(node, nir.Affine) and len(preds(g, nxt)) == 1:
            g.nodes[nxt] = nir.Affine(weight=f64(node.weight) * factor, bias=f64(node.bias))
        elif isinstance(node, nir.Linear) and len(preds(g, nxt)) == 1:
            g.nodes[nxt] = nir.Linear(weight=f64(node.weight) * factor)
        elif isinstance(node, nir.Conv2d) and len(preds(g, nxt)) == 1:
            g.nodes[nxt] = nir.Conv2d(
                input_shape=node.input_shape, weight=f64(node.weight) * factor, stride=node.stride,
                padding=node.padding, dilation=node.dilation, groups=node.groups, bias=f64(node.bias),
            )
        else:
            raise InteropError(f"{why}, which needs a weighted layer after it, not {type(node).__name__} {nxt!r}",
                               node=name)


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
