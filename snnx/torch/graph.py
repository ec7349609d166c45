"""A torch executor for a flat NIR graph, shared by every torch-based backend.

A backend supplies only its neurons; this module does everything else the contract
(``specs/semantics.md``) asks for: stateless layers, fan-in sums, cycles, delays, and the export back to
NIR. A backend (built-in or third-party) uses it like this::

    from snnx.torch.graph import TorchNeuron, build_graph_module   # TorchNeuron lives in snnx.torch.neuron

    class MyLIF(TorchNeuron):
        def __init__(self, name, node, dt): ...
        def init_state(self, x): return torch.zeros_like(x)
        def step(self, x, v): ...; return spikes, v
        def to_nir(self): ...

    def factory(name: str, node: nir.NIRNode, dt: float) -> TorchNeuron:
        return MyLIF(name, node, dt)

    module = build_graph_module(flat_graph, factory, backend="mine")
    spikes = module(x)          # x: (T, batch, *shape), time-major
    graph = module.to_nir()     # trained weights + contract metadata

The factory is called for every node whose kind is a neuron in :data:`snnx.ir.nodes.KINDS` (``IF``,
``LIF``, ``LI``, ``I``, ``CubaLI``, ``CubaLIF``); a wrapper of a framework's own neuron can build on
:class:`snnx.torch.neuron.ContractNeuron`. Every other kind is built by the :data:`LAYERS` table:
``Affine``/``Linear`` as :class:`torch.nn.Linear`, ``Conv1d``/``Conv2d`` as
:class:`torch.nn.Conv1d`/:class:`torch.nn.Conv2d`, pools as :class:`torch.nn.AvgPool2d`, and
``Scale``, ``Flatten``, ``Threshold``, ``Delay``, ``Input`` and ``Output`` by small modules here. Those
kinds plus the neuron kinds are :data:`snnx.torch.backend.TORCH_NODE_TYPES`, the node types a torch
backend's capabilities claim.

Execution: a graph without cycles runs layer by layer over the whole sequence (a stateless layer sees
``(T*batch, *shape)`` in one call, a neuron its whole ``(T, batch, *shape)`` trace through
:meth:`TorchNeuron.forward`), as fast as a hand-written model. A graph with cycles runs step by step in
the schedule order of :func:`snnx.ir.schedule.schedule`, back edges carrying the previous step's value.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from snnx.errors import PluginError, UnsupportedNodeError, ValidationError
from snnx.ir.nodes import NEURON_KINDS, find_kind, kind_of
from snnx.ir.prepare import PreparedGraph, prepare
from snnx.ir.semantics import set_graph_contract
from snnx.ir.shapes import conv_padding, pair, pool_geometry
from snnx.torch.neuron import TorchNeuron

__all__ = [
    "LAYERS",
    "DelayModule",
    "FlattenModule",
    "GraphModule",
    "LayerRule",
    "NeuronFactory",
    "ScaleModule",
    "ThresholdModule",
    "TorchNeuron",
    "as_tensor",
    "build_graph_module",
    "heaviside",
]

def as_tensor(value: Any, dtype: torch.dtype = torch.float32) -> Tensor:
    """A NIR parameter (numpy array or scalar) as a tensor of ``dtype``."""
    return torch.tensor(np.array(value, dtype=np.float64), dtype=dtype)


def _float_tensor(module: nn.Module) -> Tensor | None:
    """The module's first floating-point parameter or buffer (its dtype and device are the model's)."""
    tensors = itertools.chain(module.parameters(), module.buffers())
    return next((t for t in tensors if t.is_floating_point()), None)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


#: ``factory(name, node, dt) -> TorchNeuron``, supplied by a backend for every neuron node.
NeuronFactory = Callable[[str, nir.NIRNode, float], TorchNeuron]


# -- stateless and executor-owned layers ----------------------------------------------------------------
class _HeavisideATan(torch.autograd.Function):
    """Strict step ``x > 0`` forward; arctan surrogate ``1 / (1 + (pi x)^2)`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad / (1 + (math.pi * x) ** 2)


def heaviside(x: Tensor) -> Tensor:
    """``1.0 where x > 0 else 0.0`` (strict, as the contract's spikes), with an arctan surrogate gradient."""
    return _HeavisideATan.apply(x)


class ScaleModule(nn.Module):
    """NIR ``Scale``: ``y = s * x`` elementwise, ``s`` trainable."""

    def __init__(self, scale: Any) -> None:
        super().__init__()
        self.scale = nn.Parameter(as_tensor(scale, torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class FlattenModule(nn.Module):
    """NIR ``Flatten``: ``start_dim``/``end_dim`` index the per-sample shape; dim 0 of ``x`` is the batch."""

    def __init__(self, start_dim: int, end_dim: int) -> None:
        super().__init__()
        self.start_dim = int(start_dim)
        self.end_dim = int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        rank = x.dim() - 1
        start = self.start_dim % rank if rank else 0
        end = self.end_dim % rank if rank else 0
        return torch.flatten(x, 1 + start, 1 + end)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim} (per sample)"


class ThresholdModule(nn.Module):
    """NIR ``Threshold``: ``y = 1 if x > threshold else 0`` (strict); arctan surrogate gradient."""

    def __init__(self, threshold: Any) -> None:
        super().__init__()
        self.register_buffer("threshold", as_tensor(threshold, torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return heaviside(x - self.threshold)


class DelayModule(TorchNeuron):
    """NIR ``Delay``: ``y[t] = x[t - k]`` with ``k = round(delay / dt)`` steps per element, zeros before."""

    def __init__(self, name: str, node: nir.Delay, dt: float) -> None:
        super().__init__()
        self.node_name = name
        self.node = copy.deepcopy(node)
        steps = np.rint(np.asarray(node.delay, dtype=np.float64) / dt).astype(np.int64)
        if np.any(steps < 0):
            msg = f"node {name!r}: Delay has a negative delay {np.asarray(node.delay).min()}; delays must be >= 0"
            raise ValidationError(msg, node=name)
        self.register_buffer("steps", torch.as_tensor(steps))
        self.depth = int(steps.max(initial=0))
        self.uniform = bool(steps.size == 0 or np.all(steps == steps.reshape(-1)[0]))

    def forward(self, x: Tensor) -> Tensor:
        if self.depth == 0:
            return x
        T = x.shape[0]
        if self.uniform:
            k = min(self.depth, T)
            return torch.cat([x.new_zeros((k, *x.shape[1:])), x[: T - k]])
        padded = torch.cat([x.new_zeros((self.depth, *x.shape[1:])), x])
        t = torch.arange(T, device=x.device).view(T, *([1] * (x.dim() - 1)))
        index = (t + self.depth - self.steps).expand(x.shape)
        return torch.gather(padded, 0, index)

    def init_state(self, x: Tensor) -> Tensor:
        # history[j] holds x[t-1-j]
        return x.new_zeros((self.depth, *x.shape))

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        if self.depth == 0:
            return x, state
        window = torch.cat([x[None], state])  # window[j] = x[t-j]
        index = self.steps.expand(x.shape)[None]
        return torch.gather(window, 0, index)[0], window[:-1]

    def to_nir(self) -> nir.NIRNode:
        return copy.deepcopy(self.node)


def _linear(name: str, node: nir.NIRNode, bias: bool) -> nn.Linear:
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2:
        msg = (
            f"node {name!r}: {type(node).__name__} weight must be 2-D (out, in) for torch, got shape "
            f"{w.shape}; reshape the weights into one 2-D matrix"
        )
        raise UnsupportedNodeError(msg)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=bias, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(as_tensor(w, torch.float64))
        if bias:
            b = np.broadcast_to(np.asarray(node.bias, np.float64), (w.shape[0],))
            layer.bias.copy_(as_tensor(b, torch.float64))
    return layer


def _conv(name: str, node: nir.NIRNode, nd: int) -> nn.Module:
    w = np.asarray(node.weight, dtype=np.float64)
    groups = int(np.asarray(node.groups))
    kernel = w.shape[2:]
    stride = pair(node.stride, nd, name, "stride")
    dilation = pair(node.dilation, nd, name, "dilation")
    pads = conv_padding(node, kernel, dilation)
    symmetric = all(before == after for before, after in pads)
    conv_cls = nn.Conv2d if nd == 2 else nn.Conv1d
    conv = conv_cls(
        w.shape[1] * groups,
        w.shape[0],
        kernel_size=tuple(kernel),
        stride=stride,
        padding=tuple(before for before, _ in pads) if symmetric else 0,
        dilation=dilation,
        groups=groups,
        bias=True,
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.weight.copy_(as_tensor(w, torch.float64))
        b = np.broadcast_to(np.asarray(node.bias, np.float64), (w.shape[0],))
        conv.bias.copy_(as_tensor(b, torch.float64))
    if symmetric:
        return conv
    # "same" with an even kernel pads one more after than before, which nn.Conv cannot express.
    flat_pad = tuple(p for before_after in reversed(pads) for p in before_after)
    pad = nn.ZeroPad2d(flat_pad) if nd == 2 else nn.ConstantPad1d(flat_pad, 0.0)
    return nn.Sequential(pad, conv)


def _pool(name: str, node: nir.NIRNode, total: bool) -> nn.Module:
    k, s, p = pool_geometry(node, name)
    # divisor_override=1 turns the average into an exact sum (no divide-then-multiply rounding).
    divisor = 1 if total else None
    if all(pp <= kk // 2 for pp, kk in zip(p, k)):
        return nn.AvgPool2d(k, s, p, count_include_pad=True, divisor_override=divisor)
    # torch refuses padding larger than half the kernel; pad explicitly instead.
    return nn.Sequential(
        nn.ZeroPad2d((p[1], p[1], p[0], p[0])), nn.AvgPool2d(k, s, 0, divisor_override=divisor)
    )


def _export_affine(node: nir.NIRNode, layer: nn.Module) -> nir.NIRNode:
    return nir.Affine(weight=_numpy(layer.weight), bias=_numpy(layer.bias))


def _export_linear(node: nir.NIRNode, layer: nn.Module) -> nir.NIRNode:
    return nir.Linear(weight=_numpy(layer.weight))


def _export_conv(node: nir.NIRNode, layer: nn.Module) -> nir.NIRNode:
    return dataclasses.replace(node, weight=_numpy(layer.weight), bias=_numpy(layer.bias))


def _export_scale(node: nir.NIRNode, layer: nn.Module) -> nir.NIRNode:
    return nir.Scale(scale=_numpy(layer.scale))


#: ``build(name, node, dt) -> module`` (``None`` for an identity: Input, Output).
Build = Callable[[str, Any, float], "nn.Module | None"]
#: ``export(node, layer) -> node`` with the layer's current (trained) parameters.
Export = Callable[[Any, nn.Module], nir.NIRNode]


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How the executor runs one node kind that is not a neuron.

    :ivar build: makes the module from the node (``dt`` matters to ``Delay`` only).
    :ivar export: writes a trained layer's parameters back into the node; ``None`` when the layer has
        no trainable parameters (the node is exported unchanged).
    """

    build: Build
    export: Export | None = None


#: What the executor builds itself, by node-kind name (:data:`snnx.ir.nodes.KINDS`); every neuron kind
#: goes to the backend's neuron factory instead. Its keys are :data:`snnx.torch.backend.EXECUTOR_KINDS`
#: (a test keeps the two equal), so the torch backends' capabilities claim exactly what runs here.
LAYERS: dict[str, LayerRule] = {
    "Input": LayerRule(lambda name, node, dt: None),
    "Output": LayerRule(lambda name, node, dt: None),
    "Affine": LayerRule(lambda name, node, dt: _linear(name, node, bias=True), _export_affine),
    "Linear": LayerRule(lambda name, node, dt: _linear(name, node, bias=False), _export_linear),
    "Scale": LayerRule(lambda name, node, dt: ScaleModule(node.scale), _export_scale),
    "Conv1d": LayerRule(lambda name, node, dt: _conv(name, node, 1), _export_conv),
    "Conv2d": LayerRule(lambda name, node, dt: _conv(name, node, 2), _export_conv),
    "SumPool2d": LayerRule(lambda name, node, dt: _pool(name, node, total=True)),
    "AvgPool2d": LayerRule(lambda name, node, dt: _pool(name, node, total=False)),
    "Flatten": LayerRule(lambda name, node, dt: FlattenModule(node.start_dim, node.end_dim)),
    "Threshold": LayerRule(lambda name, node, dt: ThresholdModule(node.threshold)),
    "Delay": LayerRule(DelayModule),
}


def _build_layer(name: str, node: nir.NIRNode, dt: float, backend: str) -> nn.Module | None:
    """The executor's module for a node that is not a neuron."""
    kind = kind_of(node, name)
    rule = LAYERS.get(kind.name)
    if rule is None:
        msg = (
            f"node {name!r}: the torch executor cannot run NIR {kind.name} nodes (it runs "
            f"{', '.join(sorted({*LAYERS, *NEURON_KINDS}))}); backend {backend!r} should refuse such graphs in its "
            "capability check (Capabilities.node_types within snnx.torch.backend.TORCH_NODE_TYPES)"
        )
        raise UnsupportedNodeError(msg)
    return rule.build(name, node, dt)


def _inner(module: nn.Module) -> nn.Module:
    """The parameterised layer inside an explicit-padding Sequential."""
    return module[-1] if isinstance(module, nn.Sequential) else module


def _export_stateless(node: nir.NIRNode, module: nn.Module | None) -> nir.NIRNode:
    """``node`` with the current (trained) parameters of ``module``."""
    kind = find_kind(node)
    rule = LAYERS.get(kind.name) if kind is not None else None
    if rule is None or rule.export is None or module is None:
        return copy.deepcopy(node)
    new = rule.export(node, _inner(module))
    new.metadata = copy.deepcopy(node.metadata) if isinstance(node.metadata, dict) else {}
    return new


# -- the graph module -----------------------------------------------------------------------------------
def _module_key(name: str, taken: set[str]) -> str:
    # ModuleDict keys cannot contain "." but flattened names ("outer.inner") do.
    base = name.replace(".", "_") or "node"
    key, i = base, 1
    while key in taken:
        key, i = f"{base}_{i}", i + 1
    taken.add(key)
    return key


class GraphModule(nn.Module):
    """A flat NIR graph as a torch module: ``forward`` takes and returns time-major traces.

    Build it with :func:`build_graph_module`. ``forward(x)`` takes ``(T, batch, *shape)`` (or a dict
    ``{input_name: tensor}`` when the graph has several inputs) and returns the Output trace(s) in the
    same layout: a tensor when the graph has one Output, else a dict. State starts fresh on every call.

    :ivar layers: one module per node that has one, keyed by the node name with ``.`` replaced by ``_``
        (use :meth:`layer` to look one up by NIR name).
    :ivar dt: the contract time step the model was lowered with.
    :ivar backend: the name of the backend that lowered it.
    """

    def __init__(self, prepared: PreparedGraph, layers: Mapping[str, nn.Module], backend: str) -> None:
        super().__init__()
        graph = prepared.graph
        sched = prepared.schedule
        shapes = prepared.shapes
        self.backend = backend
        self.dt = float(prepared.dt)
        self.nodes: dict[str, nir.NIRNode] = dict(graph.nodes)
        self.edges: list[tuple[str, str]] = [tuple(e) for e in graph.edges]
        meta = graph.metadata if isinstance(graph.metadata, dict) else {}
        self.graph_metadata: dict[str, Any] = copy.deepcopy(meta)
        self.order: list[str] = list(sched.order)
        self.preds: dict[str, list[tuple[str, bool]]] = {k: list(v) for k, v in sched.preds.items()}
        self.back_sources: list[str] = sorted({src for src, _dst in sched.back_edges})
        self.shapes: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in shapes.items()}
        targets = {dst for _src, dst in self.edges}
        self.input_names: list[str] = sorted(
            k for k, n in graph.nodes.items() if isinstance(n, nir.Input) and k not in targets
        )
        self.output_names: list[str] = sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Output))
        taken: set[str] = set()
        self.keys: dict[str, str] = {}
        modules = {}
        for name in self.order:
            if name in layers:
                key = _module_key(name, taken)
                self.keys[name] = key
                modules[key] = layers[name]
        self.layers = nn.ModuleDict(modules)
        self.stateful: set[str] = {k for k, m in layers.items() if isinstance(m, TorchNeuron)}

    # -- access ---------------------------------------------------------------------------------------
    def layer(self, name: str) -> nn.Module | None:
        """The module that executes NIR node ``name`` (``None`` for Input/Output nodes)."""
        if name not in self.nodes:
            msg = f"the graph has no node {name!r}; nodes are {', '.join(self.order)}"
            raise KeyError(msg)
        key = self.keys.get(name)
        return self.layers[key] if key is not None else None

    @property
    def has_cycles(self) -> bool:
        """Whether the graph has back edges (then it runs step by step)."""
        return bool(self.back_sources)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, dt={self.dt:g}, inputs={self.input_names}, outputs={self.output_names}"

    # -- running --------------------------------------------------------------------------------------
    def _inputs(self, x: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not isinstance(x, Mapping):
            if len(self.input_names) != 1:
                msg = f"the graph has inputs {self.input_names}; pass a dict name -> (T, batch, *shape) tensor"
                raise ValidationError(msg)
            x = {self.input_names[0]: x}
        if set(x) != set(self.input_names):
            msg = f"inputs must be exactly {self.input_names}, got {sorted(x)}"
            raise ValidationError(msg)
        ref = _float_tensor(self)
        dtype, device = (ref.dtype, ref.device) if ref is not None else (None, None)
        out = {}
        for name in self.input_names:
            value = x[name]
            # numpy data is float64 and on the CPU; meet the module's dtype and device instead of failing
            # inside a layer
            value = value if isinstance(value, Tensor) else torch.as_tensor(value, dtype=dtype, device=device)
            want = self.shapes[name]
            if value.dim() != len(want) + 2 or tuple(value.shape[2:]) != tuple(want):
                msg = (
                    f"input {name!r} must have shape (T, batch, {', '.join(map(str, want))}) (time-major), "
                    f"got {tuple(value.shape)}"
                )
                raise ValidationError(msg, node=name)
            out[name] = value
        return out

    def _fan_in(self, name: str, values: Mapping[str, Tensor], previous: Mapping[str, Tensor]) -> Tensor:
        total: Tensor | None = None
        for src, delayed in self.preds[name]:
            value = previous[src] if delayed else values[src]
            total = value if total is None else total + value
        if total is None:  # validation rejects nodes without inputs; keep the message useful anyway
            msg = f"node {name!r} has no incoming edge; connect it or remove it"
            raise ValidationError(msg, node=name)
        return total

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Tensor | dict[str, Tensor]:
        """Run the graph on ``(T, batch, *shape)`` input(s) and return the Output trace(s)."""
        xs = self._inputs(x)
        traces = self._run_stepwise(xs) if self.back_sources else self._run_layerwise(xs)
        if len(self.output_names) == 1:
            return traces[self.output_names[0]]
        return {name: traces[name] for name in self.output_names}

    def _plan(self) -> list[tuple[str, nn.Module | None, bool]]:
        """``(name, module, stateful)`` for every non-input node in schedule order.

        Looked up once per call, not once per node and time step in :meth:`_run_stepwise`.
        """
        inputs = set(self.input_names)
        return [(name, self.layer(name), name in self.stateful) for name in self.order if name not in inputs]

    def _run_layerwise(self, xs: dict[str, Tensor]) -> dict[str, Tensor]:
        values: dict[str, Tensor] = dict(xs)
        for name, module, stateful in self._plan():
            x = self._fan_in(name, values, values)
            if module is None:
                values[name] = x
            elif stateful:
                values[name] = module(x)
            else:
                T, B = x.shape[:2]
                y = module(x.reshape(T * B, *x.shape[2:]))
                values[name] = y.reshape(T, B, *y.shape[1:])
        return values

    def _run_stepwise(self, xs: dict[str, Tensor]) -> dict[str, Tensor]:
        first = next(iter(xs.values()))
        T, B = first.shape[:2]
        previous = {
            src: first.new_zeros((B, *self.shapes[src])) for src in self.back_sources
        }
        plan = self._plan()
        states: dict[str, Any] = {}
        outputs: dict[str, list[Tensor]] = {name: [] for name in self.output_names}
        steps = {name: value.unbind(0) for name, value in xs.items()}  # see TorchNeuron.forward
        for t in range(T):
            values = {name: trace[t] for name, trace in steps.items()}
            for name, module, stateful in plan:
                x = self._fan_in(name, values, previous)
                if module is None:
                    values[name] = x
                elif stateful:
                    if name not in states:
                        states[name] = module.init_state(x)
                    values[name], states[name] = module.step(x, states[name])
                else:
                    values[name] = module(x)
            previous = {src: values[src] for src in self.back_sources}
            for name in self.output_names:
                outputs[name].append(values[name])
        return {name: torch.stack(trace) for name, trace in outputs.items()}

    # -- export ---------------------------------------------------------------------------------------
    def to_nir(self) -> nir.NIRGraph:
        """The graph with the module's current (trained) parameters and the contract metadata.

        The graph's ``metadata["snnx"]`` records ``dt``; each neuron's ``metadata["snnx"]`` its reset
        mode and initial state, so ``snnx.simulate`` of the result reproduces this module.
        """
        nodes: dict[str, nir.NIRNode] = {}
        for name, node in self.nodes.items():
            module = self.layer(name)
            if isinstance(module, TorchNeuron):
                nodes[name] = module.to_nir()
            else:
                nodes[name] = _export_stateless(node, module)
        graph = nir.NIRGraph(
            nodes=nodes,
            edges=list(self.edges),
            metadata=copy.deepcopy(self.graph_metadata),
            type_check=False,
        )
        return set_graph_contract(graph, dt=self.dt)

    def describe(self) -> str:
        """A short summary: one line per layer (NIR type -> module class) and the parameter count."""
        lines = []
        for name in self.order:
            module = self.layer(name)
            node_type = type(self.nodes[name]).__name__
            shown = type(_inner(module)).__name__ if module is not None else "-"
            if isinstance(_inner(module), nn.AvgPool2d) and _inner(module).divisor_override == 1:
                shown = "AvgPool2d(sum)"
            if isinstance(module, TorchNeuron):
                inner = [type(m).__name__ for m in module.children()]
                shown = f"{type(module).__name__}" + (f"({', '.join(inner)})" if inner else "")
            shape = "x".join(map(str, self.shapes.get(name, ()))) or "scalar"
            lines.append(f"  {name:<20} {node_type:<10} -> {shown:<28} {shape}")
        n_params = sum(p.numel() for p in self.parameters())
        n_train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        mode = "step by step (cycles)" if self.has_cycles else "layer by layer"
        head = f"{self.backend} GraphModule: {len(self.nodes)} nodes, {n_params} parameters ({n_train} trainable)"
        return "\n".join([head, f"  dt={self.dt:g}, runs {mode}", *lines])


def build_graph_module(
    graph: PreparedGraph | nir.NIRGraph,
    neuron_factory: NeuronFactory,
    backend: str,
    *,
    dtype: torch.dtype = torch.float32,
) -> GraphModule:
    """Lower a NIR graph to a :class:`GraphModule` whose neurons come from ``neuron_factory``.

    :param graph: the prepared graph (:func:`snnx.ir.prepare.prepare`); a plain NIR graph is
        prepared first (validated, flattened, its stored ``dt`` or the default).
    :param neuron_factory: ``factory(name, node, dt) -> TorchNeuron``, called for every IF, LIF, LI, I,
        CubaLI and CubaLIF node. It raises :class:`snnx.errors.UnsupportedNodeError` for what it
        cannot reproduce exactly.
    :param backend: the backend's name, stored on the module and used in messages.
    :param dtype: floating dtype of the result. Layers are built in float64 and cast once, so a
        ``torch.float64`` module holds the graph's parameters exactly (neurons that build their
        tensors in float64 too benefit the same way).
    :returns: the module; ``module(x)`` runs it, ``module.to_nir()`` exports it.
    """
    prepared = prepare(graph)
    dt = prepared.dt
    layers: dict[str, nn.Module] = {}
    for name, node in prepared.nodes.items():
        kind = kind_of(node, name)
        if kind.neuron:
            module = neuron_factory(name, node, dt)
            if not isinstance(module, TorchNeuron):
                msg = (
                    f"backend {backend!r} returned {type(module).__name__} for node {name!r} ({kind.name}); "
                    "the neuron factory must return a snnx.torch.neuron.TorchNeuron"
                )
                raise PluginError(msg)
        else:
            module = _build_layer(name, node, dt, backend)
        if module is not None:
            layers[name] = module
    return GraphModule(prepared, layers, backend=backend).to(dtype)
