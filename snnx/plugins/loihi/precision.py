"""Higher-precision weights on Loihi 2: each connection as two 8-bit synapses (the ``lava`` option ``weight_bits``).

Loihi's synapse holds an 8-bit weight mantissa and one weight exponent per synapse group. A weight of
``8 + e`` bits is ``hi * 2**e + lo`` (:func:`snnx.plugins.loihi.quantise.split_weight`): a "high" Lava
``Dense`` with the ``hi`` mantissas and weight exponent ``e`` and a "low" ``Dense`` with the ``lo``
mantissas and exponent 0, both into the same neuron's ``a_in`` (a Lava InPort sums its connections, as
Loihi's dendritic accumulator sums synapse groups), so the neuron sees ``Σ (hi·2^e + lo) s`` exactly,
as long as that sum fits the neuron's 16-bit activation
(:func:`snnx.plugins.loihi.quantise.activation_refusals` checks the worst case at ``lower``).

This is a process graph netx cannot write (one 8-bit synapse per layer), so such a model runs as Lava
``Dense`` + ``LIFReset`` processes (:mod:`snnx.plugins.loihi.populations`), and convolutions are unrolled to
``Dense``: Lava's ``fixed_pt`` ``Conv`` model ignores ``weight_exp``. See ``specs/backends/lava.md``.
Lava is imported only inside :func:`synapses`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from snnx.errors import SnnxError
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer
from snnx.plugins.loihi.quantise import MAX_WEIGHT_BITS, SYNAPSE_BITS, split_weight

#: The largest convolution unrolled to a dense matrix (outputs x inputs): 2**24 entries, 128 MiB in float64
#: (the Sinabs CNN's 16x16x16 -> 16x16x16 conv is exactly this).
MAX_UNROLLED_ENTRIES = 1 << 24


def layer_bits(weight_bits: Any, chain: CubaChain, graph_nodes: Any = ()) -> list[int]:
    """The weight bits of every layer from the ``weight_bits`` option: one number for all layers, or a
    mapping from layer name (the layer's neuron node, as ``model.report()`` names it) to bits, with
    ``"*"`` for the layers not named (default 8).

    A name that is a node of the graph (``graph_nodes``) but not a layer is refused (naming the conv
    instead of its neuron); a name that is no node at all is ignored, since ``snnx check`` lowers the
    prefix of each hidden layer with the same options, and a prefix lacks the later layers.
    """
    names = [layer.nodes[-1] for layer in chain.layers]
    if isinstance(weight_bits, Mapping):
        wrong = sorted(set(map(str, weight_bits)) & (set(graph_nodes) - set(names)))
        if wrong:
            msg = f"weight_bits names {wrong}, which are nodes but not layers (name a layer by its neuron: {names}, or '*')"
            raise SnnxError(msg)
        table = {str(k): v for k, v in weight_bits.items()}
        bits = [table.get(name, table.get("*", SYNAPSE_BITS)) for name in names]
    else:
        bits = [weight_bits] * len(names)
    out = []
    for name, b in zip(names, bits):
        try:
            value = int(b)
        except (TypeError, ValueError):
            value = -1
        if str(b).strip() != str(value) or not SYNAPSE_BITS <= value <= MAX_WEIGHT_BITS:
            msg = (
                f"layer {name!r}: weight_bits must be an integer from {SYNAPSE_BITS} (one 8-bit synapse, netx) to "
                f"{MAX_WEIGHT_BITS} (two 8-bit synapses), got {b!r}"
            )
            raise SnnxError(msg)
        out.append(value)
    return out


def _conv_matrix(layer: CubaLayer) -> np.ndarray:
    """The conv layer's weights as ``(C_out, H_out, W_out, C_in, H, W)``: one tap ``(ky, kx)`` at a time,
    every output position gets ``w[o, c, ky, kx]`` at the input position that tap reads (zero padding:
    positions outside the input are skipped). Direct indexing: pushing an identity basis through the
    convolution costs seconds and gigabytes for the Sinabs CNN's 4096 inputs."""
    w = np.asarray(layer.weight, dtype=np.float64)
    c_out, c_group, kh, kw = w.shape
    c_in, h, wd = layer.in_shape
    _c, h_out, w_out = layer.out_shape
    (sy, sx), (py, px), (dy, dx) = layer.stride, layer.padding, layer.dilation
    o_group = c_out // layer.groups
    m = np.zeros((c_out, h_out, w_out, c_in, h, wd))
    for ky in range(kh):
        iy = np.arange(h_out) * sy + ky * dy - py
        ys = np.flatnonzero((iy >= 0) & (iy < h))
        for kx in range(kw):
            ix = np.arange(w_out) * sx + kx * dx - px
            xs = np.flatnonzero((ix >= 0) & (ix < wd))
            for g in range(layer.groups):
                o = np.arange(g * o_group, (g + 1) * o_group)[:, None, None, None]
                c = np.arange(g * c_group, (g + 1) * c_group)[None, None, None, :]
                taps = w[g * o_group : (g + 1) * o_group, :, ky, kx][:, None, None, :]
                m[o, ys[None, :, None, None], xs[None, None, :, None], c, iy[ys][None, :, None, None],
                  ix[xs][None, None, :, None]] = taps
    return m


def unrolled(layer: CubaLayer) -> CubaLayer:
    """A conv layer as the equivalent dense layer (:func:`_conv_matrix`,
    NIR's ``(C, H, W)`` order on both sides); a dense layer unchanged."""
    if layer.kind != "conv":
        return layer
    n_in, n_out = int(np.prod(layer.in_shape)), int(np.prod(layer.out_shape))
    if n_in * n_out > MAX_UNROLLED_ENTRIES:
        msg = (
            f"node {layer.nodes[-1]!r}: this chain is built as Lava Dense processes (split synapses, an initial "
            "state delivered by a pulse chain, or reset 'subtract' on ATRLIF), so the convolution would be "
            f"unrolled to a {n_out}x{n_in} Dense, more than {MAX_UNROLLED_ENTRIES} weights; give this layer "
            "weight_bits=8, convert with --target loihi (reset to zero, no initial state), or use backend 'lava-float'"
        )
        raise SnnxError(msg)
    dense = copy.copy(layer)
    dense.kind = "dense"
    dense.weight = _conv_matrix(layer).reshape(n_out, n_in)
    flat = (n_out,)
    dense.bias = None if layer.bias is None else layer.channel_bias().reshape(flat)
    for key in ("v_reset", "v_bias", "v_init", "u_init"):
        value = np.asarray(getattr(layer, key), dtype=np.float64)
        setattr(dense, key, value.reshape(flat) if value.ndim else getattr(layer, key))
    dense.gain = None if layer.gain is None else np.asarray(layer.gain).reshape(flat)
    return dense


def with_split_layers(chain: CubaChain) -> CubaChain:
    """The chain with every conv layer unrolled to dense: a chain with split synapses runs as Lava
    ``Dense`` processes (:mod:`snnx.plugins.loihi.populations`), 8-bit layers included."""
    out = copy.copy(chain)
    out.layers = [unrolled(layer) for layer in chain.layers]
    return out


def _dense(weight: np.ndarray, message_bits: int) -> Any:
    """One Lava ``Dense`` with netx's encoding of 8-bit integer weights (``optimize_weight_bits``); an
    all-zero block keeps Lava's defaults. The 8-bit path: what netx builds for a layer."""
    dense = import_lava("lava.proc.dense.process")
    if not np.any(weight):
        return dense.Dense(weights=np.zeros(weight.shape), num_message_bits=message_bits)
    w, n_bits, w_exp, _sign = import_lava("lava.lib.dl.netx.utils").optimize_weight_bits(weight)
    return dense.Dense(weights=w, weight_exp=w_exp, num_weight_bits=n_bits, num_message_bits=message_bits)


def _mantissa_dense(mantissa: np.ndarray, weight_exp: int, message_bits: int) -> Any:
    """A Lava ``Dense`` whose activation is exactly ``Σ mantissa s << weight_exp`` for 8-bit signed
    mantissas (``[-128, 127]``).

    Lava's bit-accurate ``Dense`` picks the sign mode from the weights (mixed only when some are
    positive and some negative) and, in mixed mode, drops the lowest bit of an 8-bit weight: mixed
    mantissas are sent doubled with the exponent one lower. netx's ``optimize_weight_bits`` is not used
    here: for a block whose largest weight is 0 it assumes mixed mode where Lava chooses inhibitory,
    which turns a doubled -128 into -255 (found on the ``lo`` blocks, whose values are small).
    """
    dense = import_lava("lava.proc.dense.process")
    m = np.asarray(mantissa, dtype=np.int64)
    if not np.any(m):
        return dense.Dense(weights=np.zeros(m.shape), num_message_bits=message_bits)
    mixed = m.min() < 0 < m.max()
    w, exp = (2 * m, weight_exp - 1) if mixed else (m, weight_exp)
    return dense.Dense(weights=w, weight_exp=exp, num_weight_bits=8, num_message_bits=message_bits)


def synapses(weight: np.ndarray, weight_exp: int, message_bits: int) -> list[Any]:
    """Lava ``Dense`` processes carrying the integer ``weight``: one 8-bit synapse (``weight_exp = 0``, netx's
    encoding), or the high and low synapses of :func:`snnx.plugins.loihi.quantise.split_weight` (both
    connect to the same ``a_in``, whose port adds them): exponents ``e`` (``e - 1`` for mixed signs, at
    most 8) and 0."""
    if weight_exp == 0:
        return [_dense(weight, message_bits)]
    hi, lo = split_weight(weight, weight_exp)
    return [_mantissa_dense(hi, weight_exp, message_bits), _mantissa_dense(lo, 0, message_bits)]


def exact_synapse(mantissa: np.ndarray, message_bits: int) -> Any:
    """One Lava ``Dense`` whose activation is exactly ``Σ mantissa s`` for 8-bit signed integers, whatever
    their signs (:func:`_mantissa_dense`: netx's encoding mis-sizes an all-negative block)."""
    return _mantissa_dense(mantissa, 0, message_bits)


def check_savable(model: Any) -> None:
    """Refuse to write a model with split synapses as netx (one 8-bit synapse per layer)."""
    split = [p.quantisation.layer for pops in model.populations for p in pops if p.quantisation.weight_exp]
    if split:
        msg = (
            f"layers {split} use two 8-bit synapses per connection (weight_bits > 8); a netx HDF5 file holds one "
            "8-bit synapse per layer, so this model cannot be saved as .net (lower with weight_bits=8 to save it, "
            "or run it with `snnx run`/`snnx check --backends lava -O lava:weight_bits=...`)"
        )
        raise SnnxError(msg)
