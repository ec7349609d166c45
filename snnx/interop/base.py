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
            if len(shape) >= 2 and shape[0] == 1:
                g.nodes[name] = nir.Output(output_type={"output": np.asarray(shape[1:])}, metadata=node.metadata)
                out.notes.append(f"{name}: dropped the batch dimension from the Output type {shape}")
