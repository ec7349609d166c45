"""Initial voltages of layers after the first, delivered on Loihi by a parallel chain of pulse neurons.

Loihi's state starts at 0 and ``LIFReset`` zeroes ``u`` and ``v`` on the step a layer's window starts.
The contract's ``v = (1-dv) v_init + input + bias`` on that step is reached by adding ``(1-dv) v_init``
(the layer's ``kick``) to its input on exactly that step. The first layer gets it from an extra input
axon (:func:`snnx.plugins.loihi.cuba.initial_state_pulses`); layer ``j`` after it gets it from pulse
population ``j-1``: a tiny ``Dense`` + ``LIFReset`` (no decay, reset interval ``T``, the window offset of
main layer ``j-1``) fed by the input pulse axon (population 0) or the pulse population before it, so it
spikes once, on its layer's window's first step, and its spike arrives at layer ``j`` one step later,
on layer ``j``'s first step. The kick enters layer ``j`` as extra weight columns from the pulse
neurons, each no larger than the layer's largest weight, so the layer keeps its quantisation scale
(an integer kick on an integer layer stays exact; a float kick is quantised like the weights).

Such a chain runs as Lava processes (:mod:`snnx.plugins.loihi.populations`); netx cannot hold it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from snnx.errors import SnnxError
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, kick_columns
from snnx.plugins.loihi.precision import unrolled


def has_kicks(chain: CubaChain) -> bool:
    """Whether some layer has an initial voltage for a pulse chain (or, a conv first layer's, for input
    pulse axons after unrolling) to deliver."""
    return any(layer.kick is not None for layer in chain.layers)


def with_kick_columns(chain: CubaChain) -> CubaChain:
    """The chain ready for a pulse chain, with the number of neurons ``P`` of each pulse population as
    ``kick_pulses``.

    Conv layers are unrolled to dense (the kick columns are dense), the first layer gets an input pulse
    axon (a zero column) if it has none, and every layer with a ``kick`` gets ``P`` extra weight columns
    (zero-padded) read from the pulse population before it.
    """
    out = copy.copy(chain)
    out.layers = [copy.copy(unrolled(layer)) for layer in chain.layers]
    parts = {}
    for j, layer in enumerate(out.layers):
        if layer.kick is None:
            continue
        peak = float(np.max(np.abs(layer.weight))) if layer.weight.size else 0.0
        parts[j] = kick_columns(np.asarray(layer.kick, dtype=np.float64).reshape(-1), peak if peak > 0 else 127.0)
    first = out.layers[0]
    if 0 in parts:
        # A conv first layer, now dense: its kick arrives on input pulse axons like a dense one's.
        cols = parts.pop(0)
        first.weight = np.hstack([first.weight, cols])
        out.pulses, out.pulse_steps = cols.shape[1], (0,) * cols.shape[1]
    elif not out.pulses:
        first.weight = np.hstack([first.weight, np.zeros((first.weight.shape[0], 1))])
        out.pulses, out.pulse_steps = 1, (0,)
    size = max((p.shape[1] for p in parts.values()), default=0)
    for j, cols in parts.items():
        layer = out.layers[j]
        padded = np.zeros((cols.shape[0], size))
        padded[:, : cols.shape[1]] = cols
        layer.weight = np.hstack([layer.weight, padded])
    out.kick_pulses = size
    return out


def pulse_population(
    size: int, source: Any, n_source: int, column: int | None, *, steps: int, offset: int, message_bits: int,
) -> tuple[Any, Any]:
    """A pulse population of ``size`` IF neurons that fire once when ``source`` spikes, fed by ``source``
    (the input stream, reading its pulse channel ``column``, or the ``n_source`` pulse neurons before
    it); ``LIFReset`` with the window ``offset`` of its main layer. ``source`` None: the caller connects
    the returned synapse's ``s_in``. Returns ``(neuron, synapse)``."""
    lif = import_lava("lava.proc.lif.process")
    dense = import_lava("lava.proc.dense.process")
    weights = np.zeros((size, n_source))
    if column is None:
        weights[:, :] = np.eye(size, n_source)
    else:
        weights[:, column] = 1.0
    syn = dense.Dense(weights=weights, num_message_bits=message_bits)
    # Fires when v > 0; du = 4095 clears the current completely after each step (Lava adds 1 to du) and
    # the spike resets v, so each neuron fires once per window, on the step its source's pulse arrives.
    neuron = lif.LIFReset(shape=(size,), du=4095, dv=0, vth=0, bias_exp=6, reset_interval=steps, reset_offset=offset)
    if source is not None:
        source.connect(syn.s_in)
    syn.a_out.connect(neuron.a_in)
    return neuron, syn


def check_savable(chain: CubaChain) -> None:
    """Refuse to write a chain whose later layers start from a pulse-chain kick as netx."""
    kicked = [layer.nodes[-1] for layer in chain.layers if layer.kick is not None]
    if kicked:
        msg = (
            f"layers {kicked} start each window from a non-zero v_init, delivered by a parallel chain of pulse "
            "neurons; a netx HDF5 file holds one chain of layers, so this model cannot be saved as .net (run it "
            "with `snnx run`/`snnx check --backends lava`)"
        )
        raise SnnxError(msg)
