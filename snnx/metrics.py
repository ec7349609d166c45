"""Activity and cost of a spiking network: spikes, firing rates, synaptic operations, memory, energy.

Every number here is defined in ``specs/metrics.md``; the energy constants are cited there. In short:

- **spikes** of a spiking node (IF, LIF, CubaLIF, Threshold) are the non-zero entries of its output;
  the **firing rate** is spikes per neuron per time step.
- A **synaptic layer** (Affine, Linear, Conv1d/2d, SumPool2d/AvgPool2d, Scale) does one operation per
  (non-zero input element, output element it touches). The **fan-out** of an input element is the exact
  number of output elements it touches: ``out_features`` for Affine/Linear; for a convolution
  ``C_out/groups`` times the number of output positions whose window covers it (borders, stride,
  dilation and padding included, padding taps excluded); for a pool the number of windows covering it.
- A layer whose input is made of spikes (through Flatten, Delay, pools and fan-in sums of spikes) does
  **accumulates** (ACs, the SOPs): one per spike and target, so a pooled count ``c`` costs ``c`` ACs
  per target. A layer with analog input (the first layer fed with pixels, a readout fed with currents)
  does **multiply-accumulates** (MACs), one per non-zero input element and target.
- The **ANN** with the same topology (neurons replaced by ReLUs, one pass per sample) does
  ``Σ fan-out`` MACs per weighted layer and as many additions per pool.

Traces can come from the reference simulator (:func:`stats` runs it) or from any backend
(:func:`trace_module` records a lowered torch :class:`~snnx.torch.graph.GraphModule`); nodes missing
from a partial set of traces are recomputed from their inputs with the reference's stateless operators.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError, ValidationError
from snnx.ir.passes import flatten
from snnx.ir.reference import apply_stateless, simulate
from snnx.ir.schedule import Schedule, schedule
from snnx.ir.semantics import dt_of
from snnx.ir.shapes import conv_padding, pair as _pair
from snnx.ir.validate import validate

Array = np.ndarray

#: Nodes whose output is a spike train.
SPIKING = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)
#: Stateful neuron nodes: one state update per neuron and time step.
NEURONS = (nir.I, nir.IF, nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF)
#: Nodes that do synaptic work on their input.
SYNAPTIC = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Scale)
#: Nodes that move events without doing arithmetic (their output is events iff their input is).
PASS_THROUGH = (nir.Flatten, nir.Delay, nir.Output, nir.Input)


# -- energy constants (cited in specs/metrics.md) -----------------------------------------------------
@dataclass(frozen=True)
class OpEnergy:
    """Energy of one addition and one multiplication at a precision, in picojoules."""

    add_pj: float
    mult_pj: float

    @property
    def ac_pj(self) -> float:
        """An accumulate is one addition."""
        return self.add_pj

    @property
    def mac_pj(self) -> float:
        """A multiply-accumulate is one multiplication plus one addition."""
        return self.mult_pj + self.add_pj


#: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V.
HOROWITZ_45NM: dict[str, OpEnergy] = {
    "int8": OpEnergy(add_pj=0.03, mult_pj=0.2),
    "int32": OpEnergy(add_pj=0.1, mult_pj=3.1),
    "fp16": OpEnergy(add_pj=0.4, mult_pj=1.1),
    "fp32": OpEnergy(add_pj=0.9, mult_pj=3.7),
}
#: Bits per value at each precision (for memory).
PRECISION_BITS = {"int8": 8, "int32": 32, "fp16": 16, "fp32": 32}

#: Davies et al., "Loihi: a neuromorphic manycore processor with on-chip learning", IEEE Micro 38(1)
#: 2018, Table 1 (14 nm): minimum energy per synaptic spike op, per active neuron update, and per
#: spike sent within a tile. Tile hops, learning and barrier sync are not modelled.
LOIHI_SOP_PJ = 23.6
LOIHI_NEURON_UPDATE_PJ = 52.0
LOIHI_SPIKE_PJ = 1.7


# -- fan-out ------------------------------------------------------------------------------------------
def _window_counts(size: int, kernel: int, stride: int, dilation: int, pad_before: int, out: int) -> Array:
    """For each of ``size`` input positions: how many of the ``out`` windows read it (padding excluded)."""
    counts = np.zeros(size, dtype=np.int64)
    taps = np.arange(out)[:, None] * stride - pad_before + np.arange(kernel)[None, :] * dilation
    taps = taps[(taps >= 0) & (taps < size)]
    np.add.at(counts, taps, 1)
    return counts


def _spatial_counts(in_spatial, out_spatial, kernel, stride, dilation, pads) -> Array:
    """Product over dimensions of :func:`_window_counts`: windows are products of per-dim ranges."""
    result = np.ones((), dtype=np.int64)
    for n, o, k, s, d, (p0, _p1) in zip(in_spatial, out_spatial, kernel, stride, dilation, pads):
        counts = _window_counts(n, k, s, d, p0, o)
        result = np.multiply.outer(result, counts)
    return result


def fan_out(node: nir.NIRNode, in_shape: tuple[int, ...], out_shape: tuple[int, ...], name: str = "?") -> Array:
    """Exact fan-out of every input element of a synaptic node: an int array of shape ``in_shape``.

    :raises ValidationError: for a node that is not synaptic.
    """
    if isinstance(node, (nir.Affine, nir.Linear)):
        return np.full(in_shape, int(out_shape[0]), dtype=np.int64)
    if isinstance(node, nir.Scale):
        return np.ones(in_shape, dtype=np.int64)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        nd = 2 if isinstance(node, nir.Conv2d) else 1
        w = np.asarray(node.weight)
        kernel = w.shape[2:]
        stride = _pair(node.stride, nd, name, "stride")
        dilation = _pair(node.dilation, nd, name, "dilation")
        pads = conv_padding(node, kernel, dilation)
        groups = int(np.asarray(node.groups))
        spatial = _spatial_counts(in_shape[1:], out_shape[1:], kernel, stride, dilation, pads)
        per_channel = w.shape[0] // groups
        return np.broadcast_to(spatial * per_channel, in_shape).astype(np.int64)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k = _pair(node.kernel_size, 2, name, "kernel_size")
        s = _pair(node.stride, 2, name, "stride")
        p = _pair(node.padding, 2, name, "padding")
        spatial = _spatial_counts(in_shape[1:], out_shape[1:], k, s, (1, 1), [(pp, pp) for pp in p])
        return np.broadcast_to(spatial, in_shape).astype(np.int64)
    msg = f"node {name!r} ({type(node).__name__}) is not a synaptic layer; fan-out is defined for {_names(SYNAPTIC)}"
    raise ValidationError(msg, node=name)


def _names(types: tuple[type, ...]) -> str:
    return ", ".join(t.__name__ for t in types)


def _event_factor(node: nir.NIRNode, name: str) -> float:
    """How many events one unit of this pool's output stands for (AvgPool divides by the window)."""
    if isinstance(node, nir.AvgPool2d):
        k = _pair(node.kernel_size, 2, name, "kernel_size")
        return float(k[0] * k[1])
    return 1.0


def _param_count(node: nir.NIRNode) -> int:
    """Numeric values of ``node``'s arrays; structure (types, strides, pool and flatten geometry) is not counted."""
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d, nir.Flatten)):
        return 0
    total = 0
    for attr, value in vars(node).items():
        if attr in ("input_type", "output_type", "metadata", "input_shape"):
            continue
        if isinstance(node, (nir.Conv1d, nir.Conv2d)) and attr in ("stride", "padding", "dilation", "groups"):
            continue
        arr = np.asarray(value) if not isinstance(value, (str, bytes, dict)) else None
        if arr is not None and arr.dtype.kind in "fiu":
            total += int(arr.size)
    return total


def _state_count(node: nir.NIRNode, shape: tuple[int, ...], dt: float) -> int:
    size = int(np.prod(shape)) if shape else 1
    if isinstance(node, (nir.CubaLI, nir.CubaLIF)):
        return 2 * size
    if isinstance(node, NEURONS):
        return size
    if isinstance(node, nir.Delay):
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


@dataclass
class Energy:
    """An energy estimate in picojoules per sample, with the constants it used."""

    model: str
    snn_pj: float
    ann_pj: float
    constants: dict[str, float]

    @property
    def ratio(self) -> float:
        """ANN energy over SNN energy (> 1: the SNN is cheaper)."""
        return self.ann_pj / self.snn_pj if self.snn_pj else math.inf


@dataclass
class Stats:
    """Per-layer table and totals for one graph on one input (per sample, T steps)."""

    layers: list[LayerStats]
    steps: int
    batch: int
    precision: str

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
    def rate(self) -> float:
        """Mean firing rate of the spiking neurons (spikes per neuron per step)."""
        n = sum(layer.neurons for layer in self.layers if layer.kind == "spiking")
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
        """Multiply-accumulates of the equivalent ANN per sample (weighted layers)."""
        return sum(layer.ann_ops for layer in self.layers if layer.type not in ("SumPool2d", "AvgPool2d"))

    @property
    def ann_adds(self) -> float:
        """Additions of the equivalent ANN per sample (pools)."""
        return sum(layer.ann_ops for layer in self.layers if layer.type in ("SumPool2d", "AvgPool2d"))

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

    def totals(self) -> dict[str, float]:
        """The totals as a flat dict (per sample)."""
        return {
            "steps": self.steps,
            "batch": self.batch,
            "neurons": self.neurons,
            "spikes": self.spikes,
            "rate": self.rate,
            "sops": self.sops,
            "macs": self.macs,
            "neuron_updates": self.neuron_updates,
            "ann_macs": self.ann_macs,
            "ann_adds": self.ann_adds,
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


# -- energy -------------------------------------------------------------------------------------------
def energy(s: Stats) -> dict[str, Energy]:
    """Energy estimates for ``s`` under each documented model (``specs/metrics.md`` §4).

    ``cmos45``: SNN = ACs·E_add + MACs·(E_mult+E_add); ANN = MACs·(E_mult+E_add) + pool adds·E_add,
    at the precision of ``s`` (Horowitz 2014). ``loihi``: SNN = (ACs+MACs)·E_SOP + neuron updates·E_neuron
    + spikes·E_spike (Davies et al. 2018); the ANN figure is the ``cmos45`` one, for the ratio.
    """
    op = HOROWITZ_45NM[s.precision]
    ann = s.ann_macs * op.mac_pj + s.ann_adds * op.ac_pj
    cmos = Energy(
        "cmos45",
        snn_pj=s.sops * op.ac_pj + s.macs * op.mac_pj,
        ann_pj=ann,
        constants={"ac_pj": op.ac_pj, "mac_pj": op.mac_pj},
    )
    loihi = Energy(
        "loihi",
        snn_pj=(s.sops + s.macs) * LOIHI_SOP_PJ + s.neuron_updates * LOIHI_NEURON_UPDATE_PJ + s.spikes * LOIHI_SPIKE_PJ,
        ann_pj=ann,
        constants={"sop_pj": LOIHI_SOP_PJ, "neuron_update_pj": LOIHI_NEURON_UPDATE_PJ, "spike_pj": LOIHI_SPIKE_PJ},
    )
    return {"cmos45": cmos, "loihi": loihi}


# -- the computation ----------------------------------------------------------------------------------
def _complete_traces(flat: nir.NIRGraph, sched: Schedule, traces: Mapping[str, Array]) -> dict[str, Array]:
    """``traces`` plus every missing stateless node, recomputed from its inputs (acyclic graphs)."""
    full = {k: np.asarray(v, dtype=np.float64) for k, v in traces.items() if k in flat.nodes}
    for name in sched.order:
        if name in full:
            continue
        node = flat.nodes[name]
        preds = sched.preds[name]
        if isinstance(node, NEURONS + (nir.Delay,)) or not preds or sched.has_cycles:
            msg = (
                f"no trace for node {name!r} ({type(node).__name__}); pass traces of every input and "
                "stateful node (or let snnx.metrics.stats run the reference simulator)"
            )
            raise ValidationError(msg, node=name)
        x = sum(full[src] for src, _delayed in preds)
        T, B = x.shape[:2]
        y = apply_stateless(node, x.reshape(T * B, *x.shape[2:]))
        full[name] = y.reshape(T, B, *y.shape[1:])
    return full


def _provenance(flat: nir.NIRGraph, sched: Schedule, spiking_inputs: set[str]) -> dict[str, float | None]:
    """Per node: ``None`` if its output is analog, else the events one unit of output stands for."""
    prov: dict[str, float | None] = {}
    for name in sched.order:
        node = flat.nodes[name]
        if isinstance(node, nir.Input) and not sched.preds[name]:
            prov[name] = 1.0 if name in spiking_inputs else None
        elif isinstance(node, SPIKING):
            prov[name] = 1.0
        elif isinstance(node, PASS_THROUGH + (nir.SumPool2d, nir.AvgPool2d)):
            srcs = [prov.get(src) for src, _delayed in sched.preds[name]]
            if srcs and all(f is not None for f in srcs) and len(set(srcs)) == 1:
                prov[name] = srcs[0] * _event_factor(node, name)
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
    graph: nir.NIRGraph,
    inputs: Array | Mapping[str, Array] | None = None,
    *,
    traces: Mapping[str, Array] | None = None,
    dt: float | None = None,
    precision: str = "fp32",
    spiking_inputs: bool | None = None,
) -> Stats:
    """Spikes, firing rates, synaptic operations, memory and energy of ``graph`` on one input.

    :param graph: the NIR graph (nested subgraphs are flattened; names are the flattened ones).
    :param inputs: time-major ``(T, batch, *shape)`` input(s); the reference simulator is run on them
        when ``traces`` is not given.
    :param traces: node traces from any backend, keyed by flattened node name, ``(T, batch, *shape)``;
        they must cover every Input and stateful node, the rest is recomputed.
    :param dt: time step (default: the graph's contract ``dt``).
    :param precision: ``fp32``, ``fp16``, ``int32`` or ``int8``: bytes per value and energy per op.
    :param spiking_inputs: treat the Input nodes as spike trains (their layer does ACs) or as analog
        (MACs); ``None`` decides from the data: an input whose values are all 0 or 1 is spikes.
    :returns: per-layer :class:`LayerStats` and totals, per sample, summed over the T steps.
    """
    if precision not in HOROWITZ_45NM:
        msg = f"precision must be one of {', '.join(HOROWITZ_45NM)}, got {precision!r}"
        raise SnnxError(msg)
    report = validate(graph, dt=dt)
    flat = flatten(graph)
    shapes = report.shapes
    if traces is None:
        if inputs is None:
            msg = "give inputs (to run the reference simulator) or traces (from a backend)"
            raise SnnxError(msg)
        traces = simulate(graph, inputs, dt=dt, record=True)
    sched = schedule(flat)
    full = _complete_traces(flat, sched, traces)
    input_names = [k for k, n in flat.nodes.items() if isinstance(n, nir.Input) and k in full]
    if spiking_inputs is None:
        spiking = {k for k in input_names if _is_binary(full[k])}
    else:
        spiking = set(input_names) if spiking_inputs else set()
    prov = _provenance(flat, sched, spiking)
    step = dt_of(graph) if dt is None else float(dt)
    first = next(iter(full.values()))
    T, B = first.shape[:2]
    layers: list[LayerStats] = []
    for name in sched.order:
        node = flat.nodes[name]
        shape = tuple(shapes[name])
        size = int(np.prod(shape)) if shape else 1
        layer = LayerStats(name=name, type=type(node).__name__, kind="other", shape=shape)
        layer.params = _param_count(node)
        layer.state = _state_count(node, shape, step)
        if isinstance(node, SPIKING):
            layer.kind = "spiking"
            layer.neurons = size
            layer.spikes = float(np.count_nonzero(full[name])) / B
            layer.rate = layer.spikes / (size * T) if T else 0.0
        elif isinstance(node, NEURONS):
            layer.kind = "neuron"
            layer.neurons = size
        elif isinstance(node, SYNAPTIC):
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
    return Stats(layers=layers, steps=int(T), batch=int(B), precision=precision)


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
        replace(layer, spikes=mean(i, "spikes"), rate=mean(i, "rate"), ops=mean(i, "ops"))
        for i, layer in enumerate(first.layers)
    ]
    return Stats(layers=layers, steps=first.steps, batch=total, precision=first.precision)


# -- traces from a lowered torch model ----------------------------------------------------------------
def trace_module(model: Any, inputs: Any) -> tuple[Any, dict[str, Array]]:
    """Run a lowered :class:`~snnx.torch.graph.GraphModule` and record every neuron's output trace.

    :param model: a module from ``snnx.lower(graph, to=<torch backend>)``.
    :param inputs: ``(T, batch, *shape)`` tensor or array, or ``{input_name: ...}``.
    :returns: ``(output, traces)``: the model's output and ``{node_name: numpy trace}`` for every Input and
        stateful node, ready for ``stats(graph, traces=traces)``.
    :raises SnnxError: when the model is not a GraphModule or has cycles (it then runs step by step and
        its neurons' ``forward`` is not called; use the reference simulator on ``snnx.raise_(model)``).
    """
    import torch

    from snnx.torch.graph import GraphModule, TorchNeuron

    if not isinstance(model, GraphModule):
        msg = f"trace_module needs a snnx GraphModule (from a torch backend), got {type(model).__name__}"
        raise SnnxError(msg)
    if model.has_cycles:
        msg = "the model has cycles and runs step by step; record traces with snnx.simulate(snnx.raise_(model), x, record=True)"
        raise SnnxError(msg)
    recorded: dict[str, Array] = {}
    handles = []
    for name in model.order:
        module = model.layer(name)
        if isinstance(module, TorchNeuron):
            def hook(_mod, _args, out, name=name):
                recorded[name] = out.detach().cpu().double().numpy()
            handles.append(module.register_forward_hook(hook))
    try:
        xs = inputs if isinstance(inputs, Mapping) else {model.input_names[0]: inputs}
        for k, v in xs.items():
            recorded[k] = torch.as_tensor(v).detach().cpu().double().numpy()
        output = model(dict(xs) if len(xs) > 1 else next(iter(xs.values())))
    finally:
        for h in handles:
            h.remove()
    return output, recorded


# -- rendering ----------------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-2:
        return f"{value:.3g}"
    return f"{value:,.1f}" if value != int(value) else f"{int(value):,}"


def _joules(pj: float) -> str:
    """Picojoules in the unit that gives 1-999."""
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def render(s: Stats, title: str = "stats") -> Any:
    """A :class:`rich.table.Table` of the per-layer numbers with the totals below."""
    from rich.table import Table

    table = Table(title=f"{title} (per sample, T={s.steps}, batch={s.batch})", title_justify="left")
    for col in ("node", "type", "shape", "neurons", "spikes", "rate", "ops", "kind", "fan-out", "ANN ops", "params"):
        table.add_column(col, justify="left" if col in ("node", "type", "shape", "kind") else "right")
    for layer in s.layers:
        if layer.kind == "other" and not layer.params:
            continue
        table.add_row(
            layer.name,
            layer.type,
            "x".join(map(str, layer.shape)) or "scalar",
            _fmt(layer.neurons) if layer.neurons else "",
            _fmt(layer.spikes) if layer.kind == "spiking" else "",
            f"{layer.rate:.4f}" if layer.kind == "spiking" else "",
            _fmt(layer.ops) if layer.kind == "synaptic" else "",
            layer.op_kind,
            _fmt(layer.fan_out) if layer.kind == "synaptic" else "",
            _fmt(layer.ann_ops) if layer.kind == "synaptic" else "",
            _fmt(layer.params) if layer.params else "",
        )
    return table


def summary_lines(s: Stats) -> list[str]:
    """The totals and energy estimates as short lines of text."""
    t = s.totals()
    lines = [
        f"spikes {_fmt(t['spikes'])}   rate {t['rate']:.4f}   SOPs (AC) {_fmt(t['sops'])}   "
        f"SNN MACs {_fmt(t['macs'])}   neuron updates {_fmt(t['neuron_updates'])}",
        f"ANN MACs {_fmt(t['ann_macs'])}   ANN adds {_fmt(t['ann_adds'])}   params {_fmt(t['params'])} "
        f"({_fmt(t['param_bytes'])} B)   state {_fmt(t['state'])} ({_fmt(t['state_bytes'])} B/sample) at {s.precision}",
    ]
    for e in s.energy.values():
        lines.append(
            f"energy ({e.model}): SNN {_joules(e.snn_pj)}, ANN {_joules(e.ann_pj)} (cmos45), ANN/SNN {e.ratio:.3g}x"
        )
    return lines


__all__ = [
    "HOROWITZ_45NM",
    "LOIHI_NEURON_UPDATE_PJ",
    "LOIHI_SOP_PJ",
    "LOIHI_SPIKE_PJ",
    "Energy",
    "LayerStats",
    "OpEnergy",
    "Stats",
    "energy",
    "fan_out",
    "render",
    "stats",
    "summary_lines",
    "trace_module",
]
