"""The :class:`Stats` of a prepared graph on one input: spikes, rates, synaptic operations, memory.

Every number is defined in ``specs/metrics.md``. What a node counts as comes from the node-kind table
(:mod:`snnx.ir.nodes`): ``spike_output`` nodes count spikes, ``neuron`` nodes count neurons and
state updates, ``weighted`` (synaptic) nodes count operations through their fan-out
(:mod:`snnx.metrics.geometry`), and events travel through ``relay`` nodes and pools.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.ir.nodes import NodeKind, kind_of
from snnx.ir.prepare import PreparedGraph, prepare
from snnx.ir.reference import simulate
from snnx.metrics.ann import MAC_AS_SOPS, AnnOps, ann_from_metadata
from snnx.metrics.energy import HOROWITZ_45NM, PRECISION_BITS, Energy, estimates
from snnx.metrics.geometry import POOLS, event_factor, fan_out
from snnx.metrics.trace import complete_traces

Array = np.ndarray

#: Attributes that give a node's structure (types, strides, pool and flatten geometry), not parameters.
STRUCTURE = frozenset(
    {
        "input_type", "output_type", "metadata", "input_shape", "stride", "padding", "dilation", "groups",
        "kernel_size", "start_dim", "end_dim",
    }
)


def param_count(node: nir.NIRNode) -> int:
    """Numeric values of ``node``'s arrays; structure (types, strides, pool and flatten geometry) is not counted."""
    total = 0
    for attr, value in vars(node).items():
        if attr in STRUCTURE:
            continue
        arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else None
        if arr is not None and arr.dtype.kind in "fiu":
            total += int(arr.size)
    return total


def state_count(node: nir.NIRNode, kind: NodeKind, shape: tuple[int, ...], dt: float) -> int:
    """State values per sample: ``v`` (and ``i`` for CUBA neurons), or a Delay's line of steps."""
    size = int(np.prod(shape)) if shape else 1
    if kind.neuron:
        return (2 if kind.cuba else 1) * size
    if kind.name == "Delay":
        depth = int(np.rint(np.asarray(node.delay, dtype=float) / dt).max(initial=0))
        return depth * size
    return 0


# -- results ------------------------------------------------------------------------------------------
@dataclass
class LayerStats:
    """Activity and cost of one node, per sample (averaged over the batch), summed over the T steps.

    :ivar kind: ``"spiking"``, ``"neuron"`` (non-spiking state), ``"synaptic"`` or ``"other"``.
    :ivar op_kind: for synaptic layers, ``"AC"`` (input made of spikes) or ``"MAC"`` (analog input).
    :ivar ops: synaptic operations of this layer per sample (ACs or MACs as ``op_kind`` says).
    :ivar ann_ops: operations of the same layer in the ANN, one pass per sample (MACs; adds for pools).
    :ivar fan_out: mean exact fan-out of this layer's input elements.
    :ivar negative: of ``spikes``, the ``-1`` spikes (signed neurons, ``specs/semantics.md`` §4).
    """

    name: str
    type: str
    kind: str
    shape: tuple[int, ...]
    neurons: int = 0
    spikes: float = 0.0
    rate: float = 0.0
    op_kind: str = ""
    ops: float = 0.0
    ann_ops: float = 0.0
    fan_out: float = 0.0
    params: int = 0
    state: int = 0
    negative: float = 0.0


@dataclass
class Stats:
    """Per-layer table and totals for one graph on one input (per sample, T steps).

    :ivar ann: the ANN's operation count when known (stored by ``snnx convert``, or counted from the
        ``.onnx``); ``None``: the ANN is this graph's topology with ReLUs for neurons.
    """

    layers: list[LayerStats]
    steps: int
    batch: int
    precision: str
    ann: AnnOps | None = None

    # totals (and the energy estimates) are derived, never stored twice
    @property
    def energy(self) -> dict[str, Energy]:
        """The energy estimates of :func:`energy`, by model name (``cmos45``, ``loihi``)."""
        return energy(self)

    @property
    def spikes(self) -> float:
        """Spikes per sample over all spiking layers."""
        return sum(layer.spikes for layer in self.layers)

    @property
    def neurons(self) -> int:
        """Neurons of every spiking and non-spiking neuron layer."""
        return sum(layer.neurons for layer in self.layers if layer.kind in ("spiking", "neuron"))

    @property
    def negative_spikes(self) -> float:
        """Of :attr:`spikes`, the ``-1`` spikes of signed neurons, per sample."""
        return sum(layer.negative for layer in self.layers)

    @property
    def spiking_neurons(self) -> int:
        """Neurons of the spiking layers (the ones that can emit spikes)."""
        return sum(layer.neurons for layer in self.layers if layer.kind == "spiking")

    @property
    def positive_per_neuron(self) -> float:
        """``+1`` spikes per spiking neuron per sample, over the T steps."""
        n = self.spiking_neurons
        return (self.spikes - self.negative_spikes) / n if n else 0.0

    @property
    def negative_per_neuron(self) -> float:
        """``-1`` spikes per spiking neuron per sample, over the T steps."""
        n = self.spiking_neurons
        return self.negative_spikes / n if n else 0.0

    @property
    def rate(self) -> float:
        """Mean firing rate of the spiking neurons (spikes per neuron per step)."""
        n = self.spiking_neurons
        return self.spikes / (n * self.steps) if n and self.steps else 0.0

    @property
    def sops(self) -> float:
        """Synaptic operations driven by spikes (accumulates) per sample."""
        return sum(layer.ops for layer in self.layers if layer.op_kind == "AC")

    @property
    def macs(self) -> float:
        """Multiply-accumulates of the SNN per sample (layers with analog input)."""
        return sum(layer.ops for layer in self.layers if layer.op_kind == "MAC")

    @property
    def neuron_updates(self) -> float:
        """State updates per sample: every stateful neuron once per step (a Threshold has no state)."""
        stateful = sum(layer.neurons for layer in self.layers if layer.state and layer.kind in ("spiking", "neuron"))
        return float(stateful * self.steps)

    @property
    def ann_macs(self) -> float:
        """Multiply-accumulates of the ANN per sample: :attr:`ann`'s, else the topology's weighted layers."""
        if self.ann is not None:
            return self.ann.macs
        return sum(layer.ann_ops for layer in self.layers if layer.type not in POOLS)

    @property
    def ann_adds(self) -> float:
        """Additions of the ANN per sample: :attr:`ann`'s, else the topology's pools."""
        if self.ann is not None:
            return self.ann.adds
        return sum(layer.ann_ops for layer in self.layers if layer.type in POOLS)

    @property
    def ann_source(self) -> str:
        """Where :attr:`ann_macs` comes from (``topology``, ``metadata``, ``onnx:<file>``)."""
        return self.ann.source if self.ann is not None else "topology"

    @property
    def sop_mac_ratio(self) -> float:
        """SNN operations (SOPs + SNN MACs) per ANN MAC; below 1 the SNN does fewer operations."""
        return (self.sops + self.macs) / self.ann_macs if self.ann_macs else math.inf

    @property
    def low_bit_ratio(self) -> float:
        """ANN over SNN operations with a MAC counted as :data:`MAC_AS_SOPS` low-bit SOPs (Zou et al.
        2024): ``4·ANN MACs / (SOPs + 4·SNN MACs)``; above 1 the SNN does fewer."""
        snn = self.sops + MAC_AS_SOPS * self.macs
        return MAC_AS_SOPS * self.ann_macs / snn if snn else math.inf

    @property
    def params(self) -> int:
        """Numeric parameters of the graph (weights, biases, neuron parameters)."""
        return sum(layer.params for layer in self.layers)

    @property
    def state(self) -> int:
        """State values per sample (neurons, delay lines)."""
        return sum(layer.state for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        """Parameters in bytes at the chosen precision."""
        return self.params * PRECISION_BITS[self.precision] // 8

    @property
    def state_bytes(self) -> int:
        """Neuron (and delay) state per sample at the chosen precision."""
        return self.state * PRECISION_BITS[self.precision] // 8

    def totals(self) -> dict[str, float | str]:
        """The totals as a flat dict (per sample)."""
        return {
            "steps": self.steps,
            "batch": self.batch,
            "neurons": self.neurons,
            "spikes": self.spikes,
            "negative_spikes": self.negative_spikes,
            "positive_per_neuron": self.positive_per_neuron,
            "negative_per_neuron": self.negative_per_neuron,
            "rate": self.rate,
            "sops": self.sops,
            "macs": self.macs,
            "neuron_updates": self.neuron_updates,
            "ann_macs": self.ann_macs,
            "ann_adds": self.ann_adds,
            "ann_source": self.ann_source,
            "sop_mac_ratio": self.sop_mac_ratio,
            "low_bit_ratio": self.low_bit_ratio,
            "params": self.params,
            "state": self.state,
            "param_bytes": self.param_bytes,
            "state_bytes": self.state_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return {
            "precision": self.precision,
            "totals": self.totals(),
            "energy": {
                k: {"snn_pj": e.snn_pj, "ann_pj": e.ann_pj, "ratio": e.ratio, "constants": e.constants}
                for k, e in self.energy.items()
            },
            "layers": [{**asdict(layer), "shape": list(layer.shape)} for layer in self.layers],
        }


def energy(s: Stats) -> dict[str, Energy]:
    """Energy estimates for ``s`` under each documented model (:func:`snnx.metrics.energy.estimates`)."""
    return estimates(s.totals(), s.precision)


# -- the computation ----------------------------------------------------------------------------------
def _provenance(prepared: PreparedGraph, spiking_inputs: set[str]) -> dict[str, float | None]:
    """Per node: ``None`` if its output is analog, else the events one unit of output stands for."""
    sched = prepared.schedule
    prov: dict[str, float | None] = {}
    for name in sched.order:
        node = prepared.nodes[name]
        kind = kind_of(node, name)
        factor = 1.0 if kind.relay else event_factor(node, name)
        if kind.name == "Input" and not sched.preds[name]:
            prov[name] = 1.0 if name in spiking_inputs else None
        elif kind.spike_output:
            prov[name] = 1.0
        elif factor is not None:
            srcs = [prov.get(src) for src, _delayed in sched.preds[name]]
            if srcs and all(f is not None for f in srcs) and len(set(srcs)) == 1:
                prov[name] = srcs[0] * factor
            else:
                prov[name] = None
        else:
            prov[name] = None
    return prov


def _delayed_trace(x: Array) -> Array:
    """What an edge closing a cycle delivers: the source's previous step, zeros at t = 0."""
    return np.concatenate([np.zeros_like(x[:1]), x[:-1]])


def _is_binary(x: Array) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def stats(
    graph: nir.NIRGraph | PreparedGraph,
    inputs: Array | Mapping[str, Array] | None = None,
    *,
    traces: Mapping[str, Array] | None = None,
    dt: float | None = None,
    precision: str = "fp32",
    spiking_inputs: bool | None = None,
    ann: AnnOps | None = None,
) -> Stats:
    """Spikes, firing rates, synaptic operations, memory and energy of ``graph`` on one input.

    :param graph: the NIR graph (nested subgraphs are flattened; names are the flattened ones), or a
        prepared graph (used as it is, not validated again).
    :param inputs: time-major ``(T, batch, *shape)`` input(s); the reference simulator is run on them
        when ``traces`` is not given.
    :param traces: node traces from any backend, keyed by flattened node name, ``(T, batch, *shape)``;
        they must cover every Input and stateful node, the rest is recomputed.
    :param dt: time step (default: the graph's contract ``dt``).
    :param precision: ``fp32``, ``fp16``, ``int32`` or ``int8``: bytes per value and energy per op.
    :param spiking_inputs: treat the Input nodes as spike trains (their layer does ACs) or as analog
        (MACs); ``None`` decides from the data: an input whose values are all 0 or 1 is spikes.
    :param ann: the ANN's operation count; default: the one ``snnx convert`` stored in the graph's
        metadata, else the graph's topology with ReLUs for neurons.
    :returns: per-layer :class:`LayerStats` and totals, per sample, summed over the T steps.
    """
    if precision not in HOROWITZ_45NM:
        msg = f"precision must be one of {', '.join(HOROWITZ_45NM)}, got {precision!r}"
        raise SnnxError(msg)
    prepared = prepare(graph, dt=dt)
    if ann is None:
        ann = ann_from_metadata(prepared.graph)
    if traces is None:
        if inputs is None:
            msg = "give inputs (to run the reference simulator) or traces (from a backend)"
            raise SnnxError(msg)
        traces = simulate(prepared, inputs, record=True)
    full = complete_traces(prepared, traces)
    input_names = [k for k, n in prepared.nodes.items() if isinstance(n, nir.Input) and k in full]
    if spiking_inputs is None:
        spiking = {k for k in input_names if _is_binary(full[k])}
    else:
        spiking = set(input_names) if spiking_inputs else set()
    prov = _provenance(prepared, spiking)
    sched, shapes = prepared.schedule, prepared.shapes
    first = next(iter(full.values()))
    T, B = first.shape[:2]
    layers: list[LayerStats] = []
    for name in sched.order:
        node = prepared.nodes[name]
        kind = kind_of(node, name)
        shape = tuple(shapes[name])
        size = int(np.prod(shape)) if shape else 1
        layer = LayerStats(name=name, type=type(node).__name__, kind="other", shape=shape)
        layer.params = param_count(node)
        layer.state = state_count(node, kind, shape, prepared.dt)
        if kind.spike_output:
            layer.kind = "spiking"
            layer.neurons = size
            layer.spikes = float(np.count_nonzero(full[name])) / B
            layer.negative = float(np.count_nonzero(full[name] < 0)) / B
            layer.rate = layer.spikes / (size * T) if T else 0.0
        elif kind.neuron:
            layer.kind = "neuron"
            layer.neurons = size
        elif kind.weighted:
            layer.kind = "synaptic"
            preds = sched.preds[name]
            in_shape = tuple(shapes[preds[0][0]])
            fo = fan_out(node, in_shape, shape, name)
            x = sum(_delayed_trace(full[src]) if delayed else full[src] for src, delayed in preds)
            flat_x = np.abs(x.reshape(T * B, -1))
            factors = [prov.get(src) for src, _delayed in preds]
            events = all(f is not None for f in factors) and len(set(factors)) == 1
            if events:
                layer.op_kind = "AC"
                count = np.rint(flat_x * factors[0])
            else:
                layer.op_kind = "MAC"
                count = (flat_x != 0).astype(np.float64)
            layer.ops = float(count.sum(axis=0) @ fo.reshape(-1).astype(np.float64)) / B
            layer.ann_ops = float(fo.sum())
            layer.fan_out = float(fo.mean())
        layers.append(layer)
    return Stats(layers=layers, steps=int(T), batch=int(B), precision=precision, ann=ann)


def combine(parts: list[Stats]) -> Stats:
    """One :class:`Stats` for several batches of the same graph and T: per-sample averages weighted by batch.

    :raises SnnxError: when the parts differ in graph, T or precision.
    """
    if not parts:
        msg = "combine needs at least one Stats"
        raise SnnxError(msg)
    first = parts[0]
    names = [layer.name for layer in first.layers]
    for p in parts[1:]:
        if [layer.name for layer in p.layers] != names or p.steps != first.steps or p.precision != first.precision:
            msg = "combine needs Stats of the same graph, number of steps and precision"
            raise SnnxError(msg)
    total = sum(p.batch for p in parts)

    def mean(i: int, attr: str) -> float:
        return sum(getattr(p.layers[i], attr) * p.batch for p in parts) / total

    layers = [
        replace(
            layer, spikes=mean(i, "spikes"), negative=mean(i, "negative"), rate=mean(i, "rate"), ops=mean(i, "ops")
        )
        for i, layer in enumerate(first.layers)
    ]
    return Stats(layers=layers, steps=first.steps, batch=total, precision=first.precision, ann=first.ann)


__all__ = ["LayerStats", "Stats", "combine", "energy", "param_count", "state_count", "stats"]
