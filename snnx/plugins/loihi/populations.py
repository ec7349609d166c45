"""Layers whose decays differ between neurons, deployed on Loihi 2 as one population per decay.

Loihi's CUBA neuron shares one current and one voltage decay per compartment group, so a Loihi compiler
places a layer whose neurons decay differently as several groups, one per distinct ``(du, dv)``, each
a stock CUBA layer with its own synapses from every group of the layer before. This module does that
for chains of dense layers only (a chain that needs populations and has a conv layer is refused, see
:func:`population_refusals`): it splits such layers, quantises every population on its own (its own
scale and threshold mantissa: each is its own Loihi layer) and runs the result as Lava's bit-accurate
``Dense`` and ``LIFReset`` processes under ``fixed_pt`` (the processes netx builds for a netx layer,
wired here because a netx file is one chain of layers and cannot hold parallel populations).

A recurrent layer (its own spikes fed back through stateless nodes) is built here too: a ``Dense`` from
each population's spikes back into the layer, which Lava delivers one step later, as the contract's back
edge. Loihi's stock neuron cannot silence that synapse at a window's end, so such a chain (and one with
an ATRLIF layer, which has no reset interval) runs a batch as one Lava run of per-sample segments, every
state set back to its initial value (``Var.set`` while the run is paused) between segments, rather than
as streamed windows: each sample runs as it would alone, and the network is compiled once.
See ``specs/backends/lava.md``. Lava is imported only inside the functions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.plugins.loihi import precision, pulsechain, runner, subtract
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer
from snnx.plugins.loihi.model import LavaModel
from snnx.plugins.loihi.precision import synapses
from snnx.plugins.loihi.quantise import ACTIVATION_MAX, STATE_SHIFT, SYNAPSE_BITS, LayerQuantisation, quantise_layer


@dataclass
class Population:
    """Neurons ``index`` (flat, in the layer's order) of one layer, sharing one decay pair: their own
    sub-layer (scalar decays) and its quantisation."""

    index: np.ndarray
    layer: CubaLayer
    quantisation: LayerQuantisation
    #: Integer weights ``(len(index), N)`` from the layer's own spikes (all ``N`` neurons, the previous
    #: step's), at the population's scale, for a recurrent layer; else None.
    recurrent: np.ndarray | None = None


def needs_populations(chain: CubaChain) -> bool:
    """Whether some layer's decays differ between its neurons, or a layer is recurrent (both are built
    as Lava processes here: a netx file would carry a window's last spikes into the next sample)."""
    return any(
        layer.neuron_decays is not None or layer.recurrent is not None or subtract.is_subtract(layer)
        for layer in chain.layers
    ) or pulsechain.has_kicks(chain)


def population_refusals(chain: CubaChain) -> list[str]:
    """Why the chain's per-neuron decays cannot be split into populations (empty when they can)."""
    if not any(layer.neuron_decays is not None or layer.recurrent is not None for layer in chain.layers):
        return []  # (a pulse chain alone unrolls its conv layers: pulsechain.with_kick_columns)
    reasons = [
        f"node {layer.nodes[-1]!r}: a conv layer in a chain whose decays differ between neurons or that has "
        "a recurrent layer; snnx builds such chains as Loihi populations of dense layers only (Loihi's CUBA "
        "neuron shares one decay per layer)"
        for layer in chain.layers if layer.kind != "dense"
    ]
    for layer in chain.layers:
        if layer.recurrent is None:
            continue
        if layer.recurrent_bias is not None:
            reasons.append(
                f"node {layer.nodes[-1]!r}: the recurrent run has a bias, which acts from each window's second "
                "step on; Loihi's neuron bias acts on every step (drop the bias or use backend 'lava-float')"
            )
        if np.any(layer.voltage_bias()):
            reasons.append(
                f"node {layer.nodes[-1]!r}: a recurrent layer with a neuron bias (v_leak or synapse bias): the "
                "bias could fire it before its first window, and the recurrent synapse would carry that spike in"
            )
    return reasons


def _rows(value: Any, index: np.ndarray, size: int) -> Any:
    """``value`` (a scalar or a per-neuron array) restricted to neurons ``index``."""
    arr = np.asarray(value, dtype=np.float64)
    return arr if arr.ndim == 0 else (arr * np.ones(size)).reshape(-1)[index]


def split_layer(
    layer: CubaLayer, *, steps: int | None = None, input_peak: float = 1.0, weight_bits: int = SYNAPSE_BITS,
) -> list[Population]:
    """The layer as populations of equal ``(du, dv)``, each quantised on its own (with ``weight_bits``:
    :func:`snnx.plugins.loihi.quantise.quantise_layer`)."""
    n = layer.weight.shape[0]
    if layer.neuron_decays is None:
        groups = [np.arange(n)]
        pairs = [(layer.current_decay, layer.voltage_decay)]
    else:
        du, dv = (np.asarray(d, dtype=np.float64).reshape(-1) for d in layer.neuron_decays)
        pairs = sorted(set(zip(du.tolist(), dv.tolist())))
        groups = [np.flatnonzero((du == a) & (dv == b)) for a, b in pairs]
    out = []
    n_in = layer.weight.shape[1]
    for index, (du_g, dv_g) in zip(groups, pairs):
        sub = copy.copy(layer)
        sub.weight = layer.weight[index]
        if layer.recurrent is not None:
            # One scale for both synapses into the neuron: they add into the same current.
            sub.weight = np.hstack([sub.weight, layer.recurrent[index]])
        sub.bias = None if layer.bias is None else np.asarray(layer.bias).reshape(-1)[index]
        sub.out_shape = (len(index),)
        sub.current_decay, sub.voltage_decay, sub.neuron_decays = du_g, dv_g, None
        for key in ("v_reset", "v_bias", "v_init", "u_init"):
            setattr(sub, key, _rows(getattr(layer, key), index, n))
        q = quantise_layer(sub, steps=steps, input_peak=input_peak, weight_bits=weight_bits)
        rec = None
        if layer.recurrent is not None:
            rec = q.weight[:, n_in:]
            q.weight = q.weight[:, :n_in]
            sub.weight = sub.weight[:, :n_in]
        if len(groups) > 1:
            q.layer = f"{layer.nodes[-1]}[du={du_g:.4g},dv={dv_g:.4g}]"
        out.append(Population(index=index, layer=sub, quantisation=q, recurrent=rec))
    return out


def split_chain(chain: CubaChain, bits: list[int] | None = None) -> list[list[Population]]:
    """Every layer of a dense chain as populations (a layer with shared decays is one population), layer
    ``j`` quantised to ``bits[j]`` weight bits (default 8)."""
    bits = bits or [SYNAPSE_BITS] * len(chain.layers)
    return [split_layer(layer, weight_bits=b) for layer, b in zip(chain.layers, bits)]


def _graded(pops: list[Population], x: np.ndarray) -> tuple[list[Population], np.ndarray, float]:
    """The first layer's populations and the input for graded (non-binary) input, as
    :func:`snnx.plugins.loihi.runner.run_fixed` sends it: ``round(x * 2**e)`` with the threshold and
    bias mantissas ``<< e``; ``e`` is limited by the population with the least room."""
    room = min(runner.fraction_bits_room(p.layer, p.quantisation) for p in pops)
    e, _exact = runner.graded_input(x, room)
    peak = int(np.max(np.abs(np.round(x * 2.0**e)))) if x.size else 0
    for p in pops:
        q = p.quantisation
        total = int(np.abs(q.weight).sum(axis=1).max()) * peak if q.weight.size else 0
        if q.weight_exp and total > ACTIVATION_MAX:
            msg = (
                f"node {q.layer!r}: graded input up to {peak} (2^-{e} units) through {SYNAPSE_BITS + q.weight_exp}-bit "
                f"weights can give one step an input of {total}, beyond the 16-bit activation (a_in, max "
                f"{ACTIVATION_MAX}) of Loihi's neuron; give this layer fewer weight_bits"
            )
            raise UnsupportedNodeError(msg)
    # The fed-back spikes are binary, but the threshold they act against is now 2**e times larger: their
    # weights scale with it (exactly: the low e bits are zero, which the synapse's weight exponent carries).
    pops = [
        Population(
            p.index, p.layer, runner.graded_quantisation(p.layer, p.quantisation, e),
            None if p.recurrent is None else p.recurrent * (1 << int(e)),
        )
        for p in pops
    ]
    return pops, np.round(x * 2.0**e), 2.0**e


def run_fixed_populations(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run a chain with split layers on Lava's bit-accurate Loihi 2 model (``fixed_pt``): per population
    a ``LIFReset`` (netx's CUBA neuron: ``du = iDecay - 1``, ``bias_exp = 6``) and, from every population
    of the layer before, a ``Dense`` synapse with netx's weight encoding."""
    lif = import_lava("lava.proc.lif.process")
    chain = model.chain
    # A recurrent synapse would carry a window's last spikes into the next sample's first step, and ATRLIF
    # (reset subtract) has no reset interval; on the chip the state is reset between samples: each sample
    # gets a segment of its own, and every state is set back to its initial value between segments.
    separate = x.shape[1] > 1 and any(
        layer.recurrent is not None or subtract.is_subtract(layer) for layer in chain.layers
    )
    layers = [list(p) for p in model.populations]
    last = chain.layers[-1]
    if not last.spiking:
        peak = float(np.max(np.abs(x))) if len(chain.layers) == 1 and x.size else 1.0
        bits = SYNAPSE_BITS + layers[-1][0].quantisation.weight_exp
        layers[-1] = split_layer(last, steps=x.shape[0], input_peak=peak, weight_bits=bits)
    binary = bool(np.all((x == 0) | (x == 1)))
    bits, pulse = 0, 1.0
    if not binary:
        layers[0], x, pulse = _graded(layers[0], x)
        bits = runner.INPUT_MESSAGE_BITS
    steps, batch = x.shape[:2]
    segment = None
    if separate:
        data, segment = _segments(model, x, pulse)
    else:
        data, _steps, _batch = runner.stream(model, x, pulse=pulse)
    sources: list[tuple[Any, np.ndarray]] = []  # (spike port, neuron indices) of the layer before
    inputs = []
    neurons = []
    processes = []  # every process whose state a sample changes
    pulse_port = None  # the spikes of the pulse population beside the layer before (pulsechain.py)
    kicked = [layer.kick is not None for layer in chain.layers]
    for j, pops in enumerate(layers, start=1):
        if j > 1 and kicked[j - 1]:
            n_prev = int(np.prod(chain.layers[j - 2].data_shape))
            sources = [*sources, (pulse_port, n_prev + np.arange(chain.kick_pulses))]
        current, layer_neurons = [], []
        for pop in pops:
            q = pop.quantisation
            bias = None if q.bias is None else q.bias.astype(np.int32)
            if subtract.is_subtract(pop.layer):
                # Layer j's input arrives from step j of the run (the pipeline's fill).
                neuron = subtract.atrlif_population(q, len(pop.index), fill=j)
            else:
                neuron = lif.LIFReset(
                    shape=(len(pop.index),), du=q.i_decay - 1, dv=q.v_decay, vth=q.vth, bias_exp=6,
                    **({} if bias is None else {"bias_mant": bias}), reset_interval=steps,
                    reset_offset=(1 + j) % steps,
                )
            blocks = [(None, np.arange(q.weight.shape[1]))] if j == 1 else sources
            for port, cols in blocks:
                if port is not None and port is pulse_port and not q.weight_exp:
                    # The kick columns are all of one sign more often than not: netx's encoding would
                    # double an all-negative block (precision.exact_synapse; split synapses encode it right).
                    kick = precision.exact_synapse(q.weight[:, cols], 0)
                    processes.append(kick)
                    port.connect(kick.s_in)
                    kick.a_out.connect(neuron.a_in)
                    continue
                for syn in synapses(q.weight[:, cols], q.weight_exp, bits if j == 1 else 0):
                    processes.append(syn)
                    if port is None:
                        inputs.append(syn.s_in)
                    else:
                        port.connect(syn.s_in)
                    syn.a_out.connect(neuron.a_in)
            current.append((neuron.s_out, pop.index))
            layer_neurons.append(neuron)
            neurons.append(neuron)
            processes.append(neuron)
        for pop, neuron in zip(pops, layer_neurons):
            if pop.recurrent is None:
                continue
            # Lava's Dense delivers the previous step's spikes: the contract's back edge.
            for port, cols in current:
                for syn in synapses(pop.recurrent[:, cols], pop.quantisation.weight_exp, 0):
                    processes.append(syn)
                    port.connect(syn.s_in)
                    syn.a_out.connect(neuron.a_in)
        if any(kicked[j:]):
            # Beside layer j, with its window offset: fires once on the step layer j's window starts.
            width = data.shape[0]
            pulser, syn = pulsechain.pulse_population(
                chain.kick_pulses, pulse_port, width if j == 1 else chain.kick_pulses,
                width - chain.pulses if j == 1 else None, steps=steps, offset=(1 + j) % steps,
                message_bits=bits if j == 1 else 0,
            )
            processes.extend((pulser, syn))
            if j == 1:
                inputs.append(syn.s_in)
            pulse_port = pulser.s_out
        sources = current
    outs = [port for port, _index in sources]
    probes = None if last.spiking else [n.v for n in neurons[-len(layers[-1]):]]
    restore = [state for process in processes for state in _initial_state(process)] if separate else None
    # (layer index, population, neuron) of every ATRLIF population: its never-reset state is checked for
    # saturation. (``neurons`` holds one process per population, in the order of ``layers``.)
    placed = [(j, pop) for j, pops in enumerate(layers, start=1) for pop in pops]
    subtracting = [(j, pop, n) for (j, pop), n in zip(placed, neurons) if subtract.is_subtract(pop.layer)]
    watch = [var for _j, _pop, n in subtracting for var in (n.v, n.r)]
    recorded = runner.run_process(
        neurons[0], inputs, outs, data, "fixed_pt", probe=probes, segment=segment, restore=restore,
        watch=watch or None,
    )
    if watch:
        recorded, watched = recorded
        length = segment or data.shape[-1]
        for k, (j, pop, _n) in enumerate(subtracting):
            # Layer j's window: steps [j, j + T) of each sample's stretch of the run (the pipeline's fill).
            starts = [b * length + j for b in range(batch)]  # (ATRLIF chains run one sample per segment)
            why = subtract.saturation_error(
                pop.quantisation.layer, watched[2 * k], watched[2 * k + 1], [(s0, s0 + steps) for s0 in starts]
            )
            if why:
                raise UnsupportedNodeError(why)
    out = np.zeros((int(np.prod(last.data_shape)), data.shape[-1]))
    for (_port, index), values, pop in zip(sources, recorded, layers[-1]):
        out[index] = values if last.spiking else values / (pop.quantisation.scale * (1 << STATE_SHIFT))
    if segment is not None:
        # Sample b's run is segment b: back to the layout of consecutive windows that unstream reads.
        lat = model.latency
        windows = np.zeros((out.shape[0], batch * steps + lat))
        for b in range(batch):
            windows[:, lat + b * steps : lat + (b + 1) * steps] = out[:, b * segment + lat : b * segment + lat + steps]
        out = windows
    return runner.unstream(model, out, steps, batch)


#: The Vars of the Lava processes built here that change while a sample runs (``Dense``'s pending
#: activation, the neurons' states). ATRLIF's ``theta`` is left alone: its process model scales it from
#: ``theta_0`` on the first step only, and with no decay and ``theta_step = 0`` it never changes after.
STATE_VARS = ("a_buff", "u", "v", "i", "r")


def _initial_state(process: Any) -> list[tuple[Any, np.ndarray]]:
    """``(Var, initial value)`` of every state of ``process`` that a sample's run changes."""
    out = []
    for name in STATE_VARS:
        var = getattr(process, name, None)
        if var is not None:
            out.append((var, np.broadcast_to(np.asarray(var.init), var.shape).copy()))
    return out


def _segments(model: LavaModel, x: np.ndarray, pulse: float) -> tuple[np.ndarray, int]:
    """The stream for one Lava run of the batch ``x`` in which sample ``b`` gets steps ``[b S, (b+1) S)``
    (``S`` returned): its own stream as one sample's run would see it (its window, then the latency's
    zero steps), padded with zero steps to a multiple of the window ``T``, so that ``LIFReset``'s
    ``reset_interval = T`` windows fall on the same steps of every segment as in a run of its own."""
    steps, batch = x.shape[:2]
    segment = steps * -(-(steps + model.latency) // steps)
    parts = []
    for b in range(batch):
        one, _steps, _batch = runner.stream(model, x[:, b : b + 1], pulse=pulse)
        pad = np.zeros((*one.shape[:-1], segment - one.shape[-1]))
        parts.append(np.concatenate([one, pad], axis=-1))
    return np.concatenate(parts, axis=-1), segment


def check_savable(model: LavaModel) -> None:
    """Refuse to write a model with split or recurrent layers, or split synapses, as netx HDF5 (what snnx
    writes is one chain of feed-forward layers with one decay and one 8-bit synapse each)."""
    precision.check_savable(model)
    pulsechain.check_savable(model.chain)
    if model.populations and any(len(p) > 1 for p in model.populations):
        names = [pops[0].layer.nodes[-1] for pops in model.populations if len(pops) > 1]
        msg = (
            f"layers {names} run as several Loihi populations (one per decay); a netx HDF5 file holds one "
            "chain of layers with one decay each, so this model cannot be saved as .net (run it with "
            "`snnx run`/`snnx check --backends lava`)"
        )
        raise SnnxError(msg)
    subtracting = [layer.nodes[-1] for layer in model.chain.layers if subtract.is_subtract(layer)]
    if subtracting:
        msg = (
            f"layers {subtracting} reset by subtraction and run on Loihi 2's ATRLIF neuron, which netx does not "
            "write (netx's CUBA neuron resets to 0): run it with `snnx run`/`snnx check --backends lava`, or "
            "convert with --target loihi for a netx-savable model"
        )
        raise SnnxError(msg)
    recurrent = [layer.nodes[-1] for layer in model.chain.layers if layer.recurrent is not None]
    if recurrent:
        msg = (
            f"layers {recurrent} are recurrent; snnx runs them as Lava processes, state reset between samples, and "
            "does not write them as netx (whose streamed windows would carry a sample's last spikes into the "
            "next): run it with `snnx run`/`snnx check --backends lava`"
        )
        raise SnnxError(msg)
