"""Layers whose decays differ between neurons, deployed on Loihi 2 as one population per decay.

Loihi's CUBA neuron shares one current and one voltage decay per compartment group, so a Loihi compiler
places a layer whose neurons decay differently as several groups, one per distinct ``(du, dv)``, each
a stock CUBA layer with its own synapses from every group of the layer before. This module does that
for chains of dense layers: it splits such layers, quantises every population on its own (its own
scale and threshold mantissa: each is its own Loihi layer) and runs the result as Lava's bit-accurate
``Dense`` and ``LIFReset`` processes under ``fixed_pt`` (the processes netx builds for a netx layer,
wired here because a netx file is one chain of layers and cannot hold parallel populations).
See ``specs/backends/lava.md``. Lava is imported only inside the functions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnx.errors import SnnxError
from snnx.plugins.loihi import runner
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer
from snnx.plugins.loihi.model import LavaModel
from snnx.plugins.loihi.quantise import STATE_SHIFT, LayerQuantisation, quantise_layer


@dataclass
class Population:
    """Neurons ``index`` (flat, in the layer's order) of one layer, sharing one decay pair: their own
    sub-layer (scalar decays) and its quantisation."""

    index: np.ndarray
    layer: CubaLayer
    quantisation: LayerQuantisation


def needs_populations(chain: CubaChain) -> bool:
    """Whether some layer's decays differ between its neurons."""
    return any(layer.neuron_decays is not None for layer in chain.layers)


def population_refusals(chain: CubaChain) -> list[str]:
    """Why the chain's per-neuron decays cannot be split into populations (empty when they can)."""
    if not needs_populations(chain):
        return []
    return [
        f"node {layer.nodes[-1]!r}: a conv layer in a chain whose decays differ between neurons; snnx splits "
        "such layers into one Loihi population per decay only in chains of dense layers (Loihi's CUBA neuron "
        "shares one decay per layer)"
        for layer in chain.layers if layer.kind != "dense"
    ]


def _rows(value: Any, index: np.ndarray, size: int) -> Any:
    """``value`` (a scalar or a per-neuron array) restricted to neurons ``index``."""
    arr = np.asarray(value, dtype=np.float64)
    return arr if arr.ndim == 0 else (arr * np.ones(size)).reshape(-1)[index]


def split_layer(layer: CubaLayer, *, steps: int | None = None, input_peak: float = 1.0) -> list[Population]:
    """The layer as populations of equal ``(du, dv)``, each quantised on its own."""
    n = layer.weight.shape[0]
    if layer.neuron_decays is None:
        groups = [np.arange(n)]
        pairs = [(layer.current_decay, layer.voltage_decay)]
    else:
        du, dv = (np.asarray(d, dtype=np.float64).reshape(-1) for d in layer.neuron_decays)
        pairs = sorted(set(zip(du.tolist(), dv.tolist())))
        groups = [np.flatnonzero((du == a) & (dv == b)) for a, b in pairs]
    out = []
    for index, (du_g, dv_g) in zip(groups, pairs):
        sub = copy.copy(layer)
        sub.weight = layer.weight[index]
        sub.bias = None if layer.bias is None else np.asarray(layer.bias).reshape(-1)[index]
        sub.out_shape = (len(index),)
        sub.current_decay, sub.voltage_decay, sub.neuron_decays = du_g, dv_g, None
        for key in ("v_reset", "v_bias", "v_init", "u_init"):
            setattr(sub, key, _rows(getattr(layer, key), index, n))
        q = quantise_layer(sub, steps=steps, input_peak=input_peak)
        if len(groups) > 1:
            q.layer = f"{layer.nodes[-1]}[du={du_g:.4g},dv={dv_g:.4g}]"
        out.append(Population(index=index, layer=sub, quantisation=q))
    return out


def split_chain(chain: CubaChain) -> list[list[Population]]:
    """Every layer of a dense chain as populations (a layer with shared decays is one population)."""
    return [split_layer(layer) for layer in chain.layers]


def _graded(pops: list[Population], x: np.ndarray) -> tuple[list[Population], np.ndarray, int]:
    """The first layer's populations and the input for graded (non-binary) input, as
    :func:`snnx.plugins.loihi.runner.run_fixed` sends it: ``round(x * 2**e)`` with the threshold and
    bias mantissas ``<< e``; ``e`` is limited by the population with the least room."""
    room = min(runner.fraction_bits_room(p.layer, p.quantisation) for p in pops)
    e, _exact = runner.graded_input(x, room)
    pops = [Population(p.index, p.layer, runner.graded_quantisation(p.layer, p.quantisation, e)) for p in pops]
    return pops, np.round(x * 2.0**e), 2.0**e


def run_fixed_populations(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run a chain with split layers on Lava's bit-accurate Loihi 2 model (``fixed_pt``): per population
    a ``LIFReset`` (netx's CUBA neuron: ``du = iDecay - 1``, ``bias_exp = 6``) and, from every population
    of the layer before, a ``Dense`` synapse with netx's weight encoding."""
    dense = import_lava("lava.proc.dense.process")
    lif = import_lava("lava.proc.lif.process")
    netx_utils = import_lava("lava.lib.dl.netx.utils")
    chain = model.chain
    layers = [list(p) for p in model.populations]
    last = chain.layers[-1]
    if not last.spiking:
        peak = float(np.max(np.abs(x))) if len(chain.layers) == 1 and x.size else 1.0
        layers[-1] = split_layer(last, steps=x.shape[0], input_peak=peak)
    binary = bool(np.all((x == 0) | (x == 1)))
    bits, pulse = 0, 1.0
    if not binary:
        layers[0], x, pulse = _graded(layers[0], x)
        bits = runner.INPUT_MESSAGE_BITS
    data, steps, batch = runner.stream(model, x, pulse=pulse)
    sources: list[tuple[Any, np.ndarray]] = []  # (spike port, neuron indices) of the layer before
    inputs = []
    neurons = []
    for j, pops in enumerate(layers, start=1):
        current = []
        for pop in pops:
            q = pop.quantisation
            bias = None if q.bias is None else q.bias.astype(np.int32)
            neuron = lif.LIFReset(
                shape=(len(pop.index),), du=q.i_decay - 1, dv=q.v_decay, vth=q.vth, bias_exp=6,
                **({} if bias is None else {"bias_mant": bias}), reset_interval=steps, reset_offset=(1 + j) % steps,
            )
            blocks = [(None, np.arange(q.weight.shape[1]))] if j == 1 else sources
            for port, cols in blocks:
                w, n_bits, w_exp, _sign = netx_utils.optimize_weight_bits(q.weight[:, cols])
                syn = dense.Dense(
                    weights=w, weight_exp=w_exp, num_weight_bits=n_bits, num_message_bits=bits if j == 1 else 0,
                )
                if port is None:
                    inputs.append(syn.s_in)
                else:
                    port.connect(syn.s_in)
                syn.a_out.connect(neuron.a_in)
            current.append((neuron.s_out, pop.index))
            neurons.append(neuron)
        sources = current
    outs = [port for port, _index in sources]
    probes = None if last.spiking else [n.v for n in neurons[-len(layers[-1]):]]
    recorded = runner.run_process(neurons[0], inputs, outs, data, "fixed_pt", probe=probes)
    out = np.zeros((int(np.prod(last.data_shape)), data.shape[-1]))
    for (_port, index), values, pop in zip(sources, recorded, layers[-1]):
        out[index] = values if last.spiking else values / (pop.quantisation.scale * (1 << STATE_SHIFT))
    return runner.unstream(model, out, steps, batch)


def check_savable(model: LavaModel) -> None:
    """Refuse to write a model with split layers as netx HDF5 (one chain of layers, one decay each)."""
    if model.populations and any(len(p) > 1 for p in model.populations):
        names = [pops[0].layer.nodes[-1] for pops in model.populations if len(pops) > 1]
        msg = (
            f"layers {names} run as several Loihi populations (one per decay); a netx HDF5 file holds one "
            "chain of layers with one decay each, so this model cannot be saved as .net (run it with "
            "`snnx run`/`snnx check --backends lava`)"
        )
        raise SnnxError(msg)
