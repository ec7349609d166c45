"""The CUBA fold: the snnx contract as Loihi's CUBA neuron, shared by ``lava-dl``, ``lava-float`` and ``lava``.

Loihi (and SLAYER, which models it) has one neuron, CUBA::

    u[t] = (1 - du) * u[t-1] + z[t]                  # current; z = W' x + b' (the synapse)
    v[t] = (1 - dv) * v[t-1] + u[t] (+ v_bias)       # voltage
    s[t] = v[t] > theta' ;  v[t] = 0 where s[t]       # spike, reset to zero (Loihi: strictly greater)

The contract's neurons are this neuron after a per-neuron change of units ``v' = c v``,
``u' = c g_v i`` (``specs/backends/lava-dl.md`` derives it):

=========  ======  ===========  =================================  ====================
node       du      dv           gain g folded into W', b' rows      v_bias
=========  ======  ===========  =================================  ====================
LIF / LI   1       dt/tau       c (dt/tau) r                        c (dt/tau) v_leak
IF / I     1       0            c dt r                              0
CubaLIF/LI dt/ts   dt/tm        c (dt/tm) r (dt/ts) w_in            c (dt/tm) v_leak
=========  ======  ===========  =================================  ====================

with ``theta' = c v_threshold`` shared by the layer (``c = 1`` when the layer's thresholds are equal,
and always for the non-spiking LI, CubaLI and I; ``theta'`` is the largest threshold, or the least
common multiple of differing integer thresholds, so that integer SNNs stay integer), ``v_reset' = c v_reset``, ``v_init' = c v_init``,
``u_init' = c (dt/tm) r i_init``. Stateless nodes between two neuron layers (Affine, Linear, Scale,
Flatten, pools, convolutions) are composed into one dense synapse, unless the run is a single
Conv2d, which stays a convolution.

:func:`extract_chain` folds what the float CUBA neuron of ``lava-dl`` can run;
:func:`loihi_refusals` lists what Loihi's own CUBA neuron (netx, fixed point) additionally cannot
(non-zero ``v_reset``, initial state, subtract reset, non-spiking layers, a bias into a decaying
current); ``v_leak`` and synapse biases into a non-decaying current become the neuron's voltage bias.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from snnx.errors import UnsupportedNodeError
from snnx.ir.prepare import PreparedGraph, prepare
from snnx.ir.semantics import i_init_of, reset_of, v_init_of
from snnx.ir.shapes import conv_padding

SPIKING = (nir.LIF, nir.IF, nir.CubaLIF)
NEURON_TYPES = (*SPIKING, nir.LI, nir.CubaLI, nir.I)
STATELESS_TYPES = (nir.Affine, nir.Linear, nir.Scale, nir.Flatten, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)
#: NIR node types a CUBA chain can hold.
CHAIN_NODE_TYPES = frozenset(
    {"Input", "Output", *(t.__name__ for t in NEURON_TYPES), *(t.__name__ for t in STATELESS_TYPES)}
)
#: With a stateless ``Threshold`` node as a neuron (``extract_chain(..., threshold=True)``: Loihi's CUBA
#: neuron with ``du = dv = 1`` keeps nothing from the step before, so ``v = z`` and it fires on ``z > theta``).
THRESHOLD_CHAIN_NODE_TYPES = CHAIN_NODE_TYPES | {"Threshold"}
#: A composed dense synapse larger than this (inputs x outputs) is refused rather than built.
MAX_DENSE_ENTRIES = 1 << 22


@dataclass
class CubaLayer:
    """One synapse + CUBA neuron layer with the contract folded in (see the module docstring).

    Per-neuron arrays have the layer's *data* shape: ``(N,)`` for dense layers (a dense layer's output
    is flat even when the neuron's NIR shape is not), ``(C, H, W)`` for conv layers.
    """

    kind: str  # "dense" | "conv"
    nodes: tuple[str, ...]  # the NIR nodes of the synapse run, then the neuron
    in_shape: tuple[int, ...]  # NIR shape entering the synapse run
    out_shape: tuple[int, ...]  # NIR shape of the neuron
    neuron_type: str
    weight: np.ndarray  # dense (out, in_flat) or conv (out, in/groups, kh, kw)
    bias: np.ndarray | None
    current_decay: float
    voltage_decay: float
    threshold: float | None  # None: non-spiking, the output is v'
    reset: str = "value"
    v_reset: np.ndarray | float = 0.0
    v_bias: np.ndarray | float = 0.0
    v_init: np.ndarray | float = 0.0
    u_init: np.ndarray | float = 0.0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    #: The original stateless nodes, the per-neuron gain folded into the weights, and the folded
    #: (weight, bias) as lowered: ``raise_`` writes the original nodes back while they are untrained.
    source: tuple[tuple[str, nir.NIRNode], ...] = ()
    gain: np.ndarray | None = None
    lowered: tuple[np.ndarray, np.ndarray | None] | None = None
    #: A trailing stateless run with no neuron after it (``extract_chain(..., readout=True)``): its
    #: "neuron" passes the synapse output through (``du = dv = 1``, non-spiking: ``v = z``).
    readout: bool = False
    #: Per-neuron ``(current_decay, voltage_decay)`` arrays (data shape) when they differ between the
    #: layer's neurons (``extract_chain(..., shared_decays=False)``); the scalar fields then hold the
    #: first neuron's. Loihi's own neuron shares one decay per layer.
    neuron_decays: tuple[np.ndarray, np.ndarray] | None = None
    #: Folded recurrent weights ``(N, N)`` of a layer whose spikes come back to it through a stateless
    #: run (``extract_chain(..., recurrent=True)``): the previous step's spikes, zero at a window's start.
    recurrent: np.ndarray | None = None
    #: Folded bias of the recurrent run (data shape) or None: on the back edge it acts from a window's
    #: second step on (the back edge carries zero at step 0).
    recurrent_bias: np.ndarray | None = None
    #: Per-neuron voltage kick (data shape) on the step the layer's window starts, for a layer after the
    #: first whose ``v_init`` is delivered by a pulse chain (:mod:`snnx.plugins.loihi.pulsechain`); None
    #: when the layer starts from zero.
    kick: np.ndarray | None = None

    @property
    def spiking(self) -> bool:
        return self.threshold is not None

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.out_shape if self.kind == "conv" else (int(np.prod(self.out_shape)),)

    @property
    def standard(self) -> bool:
        """Whether Loihi's own CUBA neuron runs this layer (Lava ``LIF``/``LIFReset``, netx ``CUBA``):
        spiking, reset to 0, zero initial state, and any synapse bias acting on a non-decaying current."""
        return (
            self.neuron_decays is None and self.recurrent is None
            and self.spiking and not self.readout and self.reset == "value" and not np.any(np.asarray(self.v_reset))
            and not np.any(np.asarray(self.v_init)) and not np.any(np.asarray(self.u_init))
            and (self.bias is None or self.current_decay == 1.0)
        )

    def channel_bias(self) -> np.ndarray:
        """The synapse bias per neuron (data shape; zeros when there is none)."""
        out = np.zeros(self.data_shape)
        if self.bias is not None:
            b = np.asarray(self.bias, dtype=np.float64)
            out += b.reshape(-1, *([1] * (len(self.data_shape) - 1))) if self.kind == "conv" else b
        return out

    def voltage_bias(self) -> np.ndarray:
        """The per-step voltage bias of Loihi's neuron (``bias_mant``), data shape: ``v_bias`` plus the
        synapse bias, which acts on the voltage directly when the current does not decay (``du = 1``:
        ``u = z``). Only meaningful for layers with ``current_decay == 1`` or without bias."""
        return np.asarray(self.v_bias, dtype=np.float64) * np.ones(self.data_shape) + self.channel_bias()


@dataclass
class CubaChain:
    """A feed-forward chain ``Input -> (stateless* -> neuron)+ -> Output``."""

    input: str
    output: str
    dt: float
    in_shape: tuple[int, ...]
    layers: list[CubaLayer]
    #: Extra input channels after the flat input that carry a spike at step 0 (and 1) of every window:
    #: the first layer's initial state, set by :func:`initial_state_pulses`.
    pulses: int = 0
    #: The step of every window at which each pulse channel spikes (empty: channel ``k`` at step ``k``).
    pulse_steps: tuple[int, ...] = ()
    #: Neurons per pulse population of the pulse chain that delivers later layers' ``kick`` (the number
    #: of extra weight columns each such layer reads), set by
    #: :func:`snnx.plugins.loihi.pulsechain.with_kick_columns`; 0 without a pulse chain.
    kick_pulses: int = 0

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape


def _arr(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()


def _recurrent_runs(
    graph: nir.NIRGraph, back_edges: frozenset[tuple[str, str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Self-recurrent runs ``neuron -> stateless* -> (back edge) neuron``, by neuron, or refusal reasons."""
    pred: dict[str, list[str]] = {n: [] for n in graph.nodes}
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        pred[dst].append(src)
        succ[src].append(dst)
    runs: dict[str, list[str]] = {}
    for src, dst in sorted(back_edges):
        node = graph.nodes[dst]
        run, cur = [], src
        while isinstance(graph.nodes[cur], STATELESS_TYPES) and len(pred[cur]) == 1 and len(succ[cur]) == 1:
            run.insert(0, cur)
            cur = pred[cur][0]
        if cur != dst or not run or not isinstance(node, SPIKING) or dst in runs:
            return {}, [
                f"recurrent edge ({src!r} -> {dst!r}): only a spiking neuron's own spikes fed back to it "
                "through stateless nodes form a recurrent layer"
            ]
        runs[dst] = run
    return runs, []


class _Reduced:
    """A graph's nodes and edges without some nodes (the recurrent runs), for :func:`_chain_order`."""

    def __init__(self, graph: nir.NIRGraph, drop: set[str]) -> None:
        self.nodes = {k: v for k, v in graph.nodes.items() if k not in drop}
        self.edges = [(a, b) for a, b in graph.edges if a not in drop and b not in drop]


def _chain_order(graph: nir.NIRGraph) -> tuple[list[str], list[str]]:
    """Node names from the Input to the Output, or the reasons the graph is not a simple chain."""
    inputs = sorted(n for n, node in graph.nodes.items() if isinstance(node, nir.Input))
    outputs = sorted(n for n, node in graph.nodes.items() if isinstance(node, nir.Output))
    if len(inputs) != 1 or len(outputs) != 1:
        return [], [
            f"needs exactly one Input and one Output node (found inputs {inputs}, outputs {outputs}): "
            "SLAYER/Loihi networks here are one chain from an input layer to an output layer"
        ]
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    pred: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        succ[src].append(dst)
        pred[dst].append(src)
    for name in sorted(graph.nodes):
        if len(succ[name]) > 1 or len(pred[name]) > 1:
            return [], [
                f"node {name!r} has {len(pred[name])} inputs and {len(succ[name])} outputs: SLAYER/Loihi "
                "layers form a single feed-forward chain (no fan-in, fan-out or recurrent edges)"
            ]
    order = [inputs[0]]
    while succ[order[-1]]:
        nxt = succ[order[-1]][0]
        if nxt in order:
            return [], [f"recurrent edge ({order[-1]!r} -> {nxt!r}): cycles are not supported"]
        order.append(nxt)
    if order[-1] != outputs[0] or len(order) != len(graph.nodes):
        return [], ["the graph is not one chain from its Input to its Output"]
    return order, []


#: Largest shared threshold :func:`_shared_threshold` makes from per-neuron integer thresholds.
MAX_SHARED_INTEGER_THRESHOLD = (1 << 17) - 1


def _shared_threshold(theta: np.ndarray) -> float:
    """The layer's one threshold ``theta'``: the largest, or, for differing integer thresholds, their
    least common multiple (then every gain ``c = theta'/theta`` is an integer and an integer SNN stays
    integer on Loihi, whose threshold is shared by a layer)."""
    top = float(theta.max())
    if np.ptp(theta) == 0 or not np.all(theta == np.round(theta)):
        return top
    lcm = int(np.lcm.reduce(np.unique(theta).astype(np.int64)))
    return float(lcm) if lcm <= MAX_SHARED_INTEGER_THRESHOLD else top


def _neuron_fold(
    name: str, node: nir.NIRNode, dt: float, shape: tuple[int, ...], shift_reset: bool = False,
    shared_decays: bool = True,
) -> tuple[dict[str, Any], list[str]]:
    """Per-neuron gain and CUBA parameters of one neuron node (NIR shape), or refusal reasons.

    ``shift_reset``: count the voltage from ``v_reset`` (``v~ = v - v_reset``) for reset "value", so
    the reset is to 0; the threshold becomes ``v_threshold - v_reset``, the leak target
    ``v_leak - v_reset`` and the initial voltage ``v_init - v_reset`` (exact algebra).
    """
    reasons: list[str] = []
    ones = np.ones(shape)
    if isinstance(node, nir.Threshold):
        return _threshold_fold(name, node, shape)
    r = _arr(node.r, shape)
    if isinstance(node, (nir.LIF, nir.LI)):
        du, dv = ones, dt / _arr(node.tau, shape)
        g_v, g_i, leak = dv * r, ones, _arr(node.v_leak, shape)
    elif isinstance(node, (nir.IF, nir.I)):
        du, dv = ones, 0 * ones
        g_v, g_i, leak = dt * r, ones, 0 * ones
    else:
        du, dv = dt / _arr(node.tau_syn, shape), dt / _arr(node.tau_mem, shape)
        g_v, g_i, leak = dv * r, du * _arr(node.w_in, shape), _arr(node.v_leak, shape)
    for label, value in (("dt/tau_syn", du), ("dt/tau_mem", dv)):
        if np.any(value < 0) or np.any(value > 1):
            reasons.append(
                f"node {name!r}: {label} must be in [0, 1] (got {value.min():.4g}..{value.max():.4g}); "
                "SLAYER/Loihi decays are fractions per step"
            )
        elif np.ptp(value) > 0 and shared_decays:
            reasons.append(f"node {name!r}: {label} differs between neurons; SLAYER/Loihi layers share one decay")
    spiking = isinstance(node, SPIKING)
    c = ones
    threshold = None
    v_init = v_init_of(node) * ones
    v_reset = _arr(node.v_reset, shape) if spiking else 0 * ones
    if spiking:
        theta = _arr(node.v_threshold, shape)
        if shift_reset and reset_of(node) == "value" and np.any(v_reset != 0):
            theta = theta - v_reset
            leak, v_init, v_reset = leak - v_reset, v_init - v_reset, 0 * ones
            if np.any(theta <= 0):
                reasons.append(f"node {name!r}: v_threshold must be above v_reset (Loihi fires upwards only)")
                return {}, reasons
        if np.any(theta <= 0):
            reasons.append(f"node {name!r}: v_threshold must be > 0 (SLAYER/Loihi fire upwards only)")
            return {}, reasons
        threshold = _shared_threshold(theta)
        c = threshold / theta
    fold = {
        "gain": c * g_v * g_i,
        "current_decay": float(du.flat[0]),
        "voltage_decay": float(dv.flat[0]),
        "decays": None if np.ptp(du) == 0 and np.ptp(dv) == 0 else (du, dv),
        "threshold": threshold,
        "v_bias": c * dv * leak,
        "v_init": c * v_init,
        "u_init": c * g_v * i_init_of(node) * ones if isinstance(node, (nir.CubaLIF, nir.CubaLI)) else 0 * ones,
        "reset": reset_of(node) if spiking else "value",
        "v_reset": c * v_reset,
    }
    return fold, reasons


def _threshold_fold(name: str, node: nir.Threshold, shape: tuple[int, ...]) -> tuple[dict[str, Any], list[str]]:
    """A stateless ``Threshold`` (``y = z > theta``) as a CUBA neuron with ``du = dv = 1`` (``v = z``
    every step; its reset is overwritten by the next step's input)."""
    theta = _arr(node.threshold, shape)
    if np.any(theta <= 0):
        return {}, [f"node {name!r}: a Threshold's threshold must be > 0 on Loihi (it fires upwards from v = 0)"]
    shared = _shared_threshold(theta)
    zero = np.zeros(shape)
    fold = {
        "gain": shared / theta, "current_decay": 1.0, "voltage_decay": 1.0, "decays": None, "threshold": shared,
        "v_bias": zero, "v_init": zero, "u_init": zero, "reset": "value", "v_reset": zero,
    }
    return fold, []


def _compose_dense(graph: nir.NIRGraph, run: list[str], in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The run of stateless nodes as ``y = M x_flat + b`` (pushes an identity basis through them)."""
    from snnx.ir.reference import apply_stateless

    n_in = int(np.prod(in_shape))
    x = np.eye(n_in).reshape(n_in, *in_shape)
    zero = np.zeros((1, *in_shape))
    for name in run:
        node = graph.nodes[name]
        # The basis goes through the bias-free part, so single-Affine weights come out bit-exact.
        x = apply_stateless(_without_bias(node), x)
        zero = apply_stateless(node, zero)
    return x.reshape(n_in, -1).T, zero.reshape(-1)


def _without_bias(node: nir.NIRNode) -> nir.NIRNode:
    if isinstance(node, nir.Affine):
        return nir.Linear(weight=node.weight)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        clone = copy.copy(node)
        clone.bias = np.zeros_like(np.asarray(node.bias, dtype=np.float64))
        return clone
    return node


def extract_chain(
    prepared: PreparedGraph | nir.NIRGraph, *, readout: bool = False, shift_reset: bool = False,
    shared_decays: bool = True, recurrent: bool = False, threshold: bool = False,
) -> tuple[CubaChain | None, list[str]]:
    """Fold a prepared graph into CUBA layers; ``(None, reasons)`` when impossible.

    :param readout: accept stateless nodes after the last neuron as a readout layer (a synapse whose
        output is the graph output; :attr:`CubaLayer.readout`); otherwise they are refused.
    :param shift_reset: fold a non-zero ``v_reset`` (reset "value") into the threshold, leak and initial
        voltage so the neuron resets to 0, as Loihi's does (see :func:`_neuron_fold`).
    :param shared_decays: refuse decays that differ between a layer's neurons (SLAYER and Loihi share
        one); with False they are kept per neuron (:attr:`CubaLayer.neuron_decays`).
    :param recurrent: accept a spiking neuron whose spikes come back to it through stateless nodes
        (the back edge into the neuron): a recurrent dense layer (:attr:`CubaLayer.recurrent`).
    :param threshold: fold a stateless ``Threshold`` node as a neuron layer (:func:`_threshold_fold`).
    """
    prepared = prepare(prepared)
    graph = prepared.graph
    rec_runs: dict[str, list[str]] = {}
    if recurrent and prepared.schedule.back_edges:
        rec_runs, reasons = _recurrent_runs(graph, prepared.schedule.back_edges)
        if reasons:
            return None, reasons
    order, reasons = _chain_order(_Reduced(graph, {n for run in rec_runs.values() for n in run}) if rec_runs else graph)
    if reasons:
        return None, reasons
    dt = prepared.dt
    shapes = {k: tuple(int(d) for d in v) for k, v in prepared.shapes.items()}
    chain = CubaChain(input=order[0], output=order[-1], dt=dt, in_shape=shapes[order[0]], layers=[])
    run: list[str] = []
    data_is_flat = len(chain.in_shape) == 1
    prev_out = order[0]
    for name in order[1:-1]:
        node = graph.nodes[name]
        if isinstance(node, STATELESS_TYPES):
            run.append(name)
            continue
        if not isinstance(node, NEURON_TYPES) and not (threshold and isinstance(node, nir.Threshold)):
            if isinstance(node, nir.Delay):
                reasons.append(
                    f"node {name!r}: Delay is not folded into Loihi's synaptic delays by snnx (SLAYER's delays are "
                    "learnable axonal delays; a delay line would carry one sample's spikes into the next window)"
                )
            else:
                reasons.append(f"node {name!r}: {type(node).__name__} has no SLAYER/Loihi CUBA equivalent")
            return None, reasons
        shape = shapes[name]
        fold, why = _neuron_fold(name, node, dt, shape, shift_reset, shared_decays)
        reasons += why
        in_shape = shapes[prev_out]
        prev_out = name
        if why:
            run = []
            continue
        layer = CubaLayer(
            kind="dense", nodes=(*run, name), in_shape=in_shape, out_shape=shape,
            neuron_type=type(node).__name__, weight=np.zeros(0), bias=None,
            current_decay=fold["current_decay"], voltage_decay=fold["voltage_decay"],
            threshold=fold["threshold"], reset=fold["reset"],
        )
        gain = fold["gain"]
        single_conv = len(run) == 1 and isinstance(graph.nodes[run[0]], nir.Conv2d) and not data_is_flat
        per_channel = gain.reshape(shape[0], -1) if single_conv else None
        if single_conv and np.all(np.ptp(per_channel, axis=1) == 0):
            conv = graph.nodes[run[0]]
            w = np.asarray(conv.weight, dtype=np.float64)
            kernel = tuple(w.shape[2:])
            dilation = tuple(int(d) for d in np.broadcast_to(np.asarray(conv.dilation), (2,)))
            pads = conv_padding(conv, kernel, dilation)
            if all(b == a for b, a in pads):
                g = per_channel[:, 0]
                layer.kind = "conv"
                layer.weight = w * g.reshape(-1, 1, 1, 1)
                bias = np.broadcast_to(np.asarray(conv.bias, dtype=np.float64), (w.shape[0],))
                layer.bias = bias * g if np.any(bias != 0) else None
                layer.padding = tuple(b for b, _a in pads)
                layer.stride = tuple(int(s) for s in np.broadcast_to(np.asarray(conv.stride), (2,)))
                layer.dilation = dilation
                layer.groups = int(np.asarray(conv.groups))
        if layer.kind == "dense":
            n_in, n_out = int(np.prod(in_shape)), int(np.prod(shape))
            if n_in * n_out > MAX_DENSE_ENTRIES:
                reasons.append(
                    f"nodes {list(run) or [name]}: composing them into one dense synapse needs a "
                    f"{n_out}x{n_in} matrix; only a single Conv2d directly before a neuron stays a convolution"
                )
                run = []
                continue
            m, b = _compose_dense(graph, run, in_shape)
            g = gain.reshape(-1)
            layer.weight = m * g[:, None]
            layer.bias = b * g if np.any(b != 0) else None
            data_is_flat = True
        else:
            data_is_flat = False
        data_shape = layer.data_shape
        layer.source = tuple((n, copy.deepcopy(graph.nodes[n])) for n in run)
        layer.gain = np.asarray(gain).reshape(data_shape)
        layer.lowered = (layer.weight.copy(), None if layer.bias is None else layer.bias.copy())
        for key in ("v_reset", "v_bias", "v_init", "u_init"):
            value = np.asarray(fold[key]).reshape(data_shape)
            setattr(layer, key, value if np.any(value != 0) else 0.0)
        if fold["decays"] is not None:
            layer.neuron_decays = tuple(np.asarray(d).reshape(data_shape) for d in fold["decays"])
        if name in rec_runs:
            m, b = _compose_dense(graph, rec_runs[name], shape)
            if layer.kind != "dense" or m.shape != (layer.weight.shape[0],) * 2:
                reasons.append(f"nodes {rec_runs[name]}: a recurrent run must map the dense layer {name!r} onto itself")
                run = []
                continue
            g = np.asarray(gain).reshape(-1)
            layer.recurrent = m * g[:, None]
            layer.recurrent_bias = b * g if np.any(b != 0) else None
        chain.layers.append(layer)
        run = []
    if run and readout and not reasons:
        reasons += _append_readout(chain, graph, run, shapes[prev_out], shapes[run[-1]])
    elif run:
        reasons.append(
            f"nodes {run} end the graph without a neuron: SLAYER/Loihi layers end in CUBA neurons "
            "(add an LI readout or drop the trailing stateless nodes)"
        )
    if not reasons and not chain.layers:
        reasons.append("the graph has no neuron layer")
    return (None, reasons) if reasons else (chain, [])


def _append_readout(
    chain: CubaChain, graph: nir.NIRGraph, run: list[str], in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> list[str]:
    """Append the trailing stateless ``run`` as a readout layer (one composed dense synapse)."""
    n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
    if n_in * n_out > MAX_DENSE_ENTRIES:
        return [f"nodes {run}: the readout would need a {n_out}x{n_in} dense synapse"]
    m, b = _compose_dense(graph, run, in_shape)
    layer = CubaLayer(
        kind="dense", nodes=tuple(run), in_shape=in_shape, out_shape=out_shape, neuron_type="readout",
        weight=m, bias=b if np.any(b != 0) else None, current_decay=1.0, voltage_decay=1.0, threshold=None,
        source=tuple((n, copy.deepcopy(graph.nodes[n])) for n in run), gain=np.ones(n_out), readout=True,
    )
    layer.lowered = (layer.weight.copy(), None if layer.bias is None else layer.bias.copy())
    chain.layers.append(layer)
    return []


def _per_neuron(decay: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A decay (one value, or one per neuron in any layout) as an array of the layer's data shape."""
    d = np.asarray(decay, dtype=np.float64)
    return np.broadcast_to(d.reshape(shape) if d.size == int(np.prod(shape)) else d, shape)


def initial_state_pulses(chain: CubaChain) -> CubaChain:
    """The chain with its first layer's initial state replaced by input pulses (Loihi's state starts at 0).

    Extra input axons spike at the first step(s) of every window into the first (dense) synapse:
    ``p0 = (1-du) u_init + a`` at step 0 and, with a decaying current, ``p1 = -(1-du) a`` at step 1,
    where ``a = (1-dv) v_init``. From zero state that gives ``v`` at step 0 exactly the contract's
    ``(1-dv) v_init + (1-du) u_init + z`` and cancels the extra current at step 1.

    A later layer without a current state (``du = 1``, ``u_init = 0``) gets its ``(1-dv) v_init`` as a
    ``kick``, delivered on its window's first step by a pulse chain
    (:mod:`snnx.plugins.loihi.pulsechain`); any other initial state is left for :func:`loihi_refusals`.
    """
    chain = _deeper_kicks(chain)
    first = chain.layers[0]
    v_init = np.asarray(first.v_init, dtype=np.float64) * np.ones(first.data_shape)
    u_init = np.asarray(first.u_init, dtype=np.float64) * np.ones(first.data_shape)
    if first.kind != "dense" or not (np.any(v_init) or np.any(u_init)):
        return chain
    # Per-neuron decays when they differ (the layer is then split into populations, one per decay).
    du, dv = first.neuron_decays or (first.current_decay, first.voltage_decay)
    du, dv = _per_neuron(du, v_init.shape), _per_neuron(dv, v_init.shape)
    kick = (1 - dv) * v_init
    columns = [(1 - du) * u_init + kick]
    if np.any((du != 1.0) & (kick != 0)):
        columns.append(-(1 - du) * kick)
    # An integer pulse larger than every weight would shrink an integer layer's scale below 1 (inexact):
    # several axons share it. A fractional one keeps one axon: split, each part would be rounded on its own
    # (measured: conformance case cubalif_full 59 -> 61 of 400 spikes off).
    peak = float(np.max(np.abs(first.weight))) if first.weight.size else 0.0
    whole = all(np.all(c == np.rint(c)) for c in columns)
    parts = [
        kick_columns(c.reshape(-1), peak if peak > 0 else 127.0) if whole else c.reshape(-1, 1) for c in columns
    ]
    chain = copy.deepcopy(chain)
    first = chain.layers[0]
    first.weight = np.concatenate([first.weight, *parts], axis=1)
    first.v_init, first.u_init = 0.0, 0.0
    chain.pulses = sum(p.shape[1] for p in parts)
    chain.pulse_steps = tuple(k for k, p in enumerate(parts) for _ in range(p.shape[1]))
    return chain


def kick_columns(kick: np.ndarray, peak: float) -> np.ndarray:
    """``kick`` (per neuron) as ``k`` columns summing to it, each at most ``peak`` in magnitude; integer
    kicks are split into integers (so an integer layer stays exact)."""
    k = max(1, math.ceil(float(np.max(np.abs(kick))) / peak))
    if peak >= 1 and np.all(kick == np.rint(kick)):
        mag, sign = np.abs(kick).astype(np.int64), np.sign(kick)
        base, extra = np.divmod(mag, k)
        cols = base[:, None] + (np.arange(k)[None, :] < extra[:, None])
        return cols * sign[:, None]
    return np.repeat(kick[:, None] / k, k, axis=1)


def _deeper_kicks(chain: CubaChain) -> CubaChain:
    """Layers after the first (and a conv first layer, which has no dense synapse for an extra input axon)
    whose ``v_init`` a pulse chain can deliver exactly, with it as ``kick``."""
    out = None
    start = 0 if chain.layers[0].kind == "conv" else 1
    for j, layer in enumerate(chain.layers[start:], start=start):
        v_init = np.asarray(layer.v_init, dtype=np.float64) * np.ones(layer.data_shape)
        u_init = np.asarray(layer.u_init, dtype=np.float64)
        if not layer.spiking or not np.any(v_init) or np.any(u_init):
            continue
        du, dv = layer.neuron_decays or (layer.current_decay, layer.voltage_decay)
        if np.any(_per_neuron(du, v_init.shape) != 1.0):
            # A kick into a decaying current would stay in it; only a current-free neuron takes it exactly.
            continue
        out = out or copy.deepcopy(chain)
        target = out.layers[j]
        target.kick = (1 - _per_neuron(dv, v_init.shape)) * v_init
        target.v_init = 0.0
    return out or chain


def loihi_refusals(chain: CubaChain, subtract: Callable[[CubaLayer], list[str]] | None = None) -> list[str]:
    """What Loihi's CUBA neuron (netx / Lava LIF processes) cannot run exactly, one reason each.

    :param subtract: the reasons a layer with reset "subtract" cannot run on the neuron that deploys it
        (backend ``lava``: :func:`snnx.plugins.loihi.subtract.layer_refusals`, Loihi 2's ATRLIF); None:
        such a layer is refused (the CUBA neuron resets to 0).
    """
    reasons = []
    for layer in chain.layers:
        name = layer.nodes[-1]
        last = layer is chain.layers[-1]
        if not layer.spiking and not last:
            reasons.append(
                f"node {name!r}: {layer.neuron_type} is non-spiking and feeds another layer; Loihi layers "
                "send spikes (a voltage can only be read out, by probing the last layer)"
            )
            continue
        if not layer.spiking:
            # The last layer's voltage is probed (Lava Monitor); it never fires.
            if np.any(np.asarray(layer.v_init) != 0) or np.any(np.asarray(layer.u_init) != 0):
                reasons.append(f"node {name!r}: non-zero v_init/i_init is not supported (Loihi state starts at 0)")
            if layer.bias is not None and layer.current_decay != 1.0:
                reasons.append(
                    f"nodes {list(layer.nodes[:-1])}: a synapse bias into a decaying current "
                    f"({layer.neuron_type}) is not supported: Loihi's bias is added to the voltage, not the current"
                )
            continue
        if layer.reset == "subtract" and subtract is not None:
            reasons += subtract(layer)
        elif layer.reset != "value":
            reasons.append(f"node {name!r}: reset {layer.reset!r} is not supported; Loihi resets the voltage to 0")
        elif np.any(np.asarray(layer.v_reset) != 0):  # (a subtract reset does not use v_reset)
            reasons.append(f"node {name!r}: v_reset must be 0 (Loihi resets the voltage to 0)")
        if np.any(np.asarray(layer.v_init) != 0) or np.any(np.asarray(layer.u_init) != 0):
            reasons.append(f"node {name!r}: non-zero v_init/i_init is not supported (Loihi state starts at 0)")
        if layer.bias is not None and layer.current_decay != 1.0:
            reasons.append(
                f"nodes {list(layer.nodes[:-1])}: a synapse bias into a decaying current ({layer.neuron_type}) "
                "is not supported: Loihi's bias is added to the voltage, not to the current"
            )
    return reasons


def chain_or_raise(
    graph: nir.NIRGraph,
    backend: str,
    fold: Callable[[nir.NIRGraph], tuple[CubaChain | None, list[str]]] = extract_chain,
) -> CubaChain:
    """The chain ``fold`` makes of ``graph`` (default :func:`extract_chain`); raises with every reason."""
    chain, reasons = fold(graph)
    if reasons:
        msg = f"Backend {backend!r} cannot take this graph: " + "; ".join(reasons)
        raise UnsupportedNodeError(msg)
    return chain
