"""Does data-free rounding of the weights bring the Sinabs CNN on ``lava`` to 99 % of the reference's output?

The CNN's IF neurons have no leak, so a neuron's voltage error is the sum, over its input spikes, of the
rounding errors of those weights; rounding each weight to nearest lets that sum drift. Compared here, on
Loihi's integer arithmetic (the numpy model of ``benchmarks/lava_precision.py``, which equals Lava's
``fixed_pt`` spike for spike), with the same scales and thresholds as ``lava`` chooses:

* ``nearest``: what ``lava`` does (``round(k w)``);
* ``balanced``: per neuron (a dense row; a conv output channel's kernel, which a netx conv layer shares
  across positions), round up the weights with the largest fractional parts and down the others, so that
  the neuron's summed rounding error is within ±0.5 of a weight unit (largest remainder);
* ``diffusion``: per neuron, error diffusion along the row (each weight rounds its value plus the error
  carried so far), so every run of consecutive inputs has a summed error within ±0.5;
* ``+bias``: the neuron's summed rounding error times an assumed input spike rate subtracted every step
  as a bias of 1/64 weight unit resolution (Loihi's voltage has 6 fractional bits; netx writes
  ``bias_exp = 6``, i.e. whole weight units, so this would need the populations path). The rate per layer
  is the mean firing rate of the layer below on a fixed synthetic input (p = 2.5 %, seed 99), not on the
  measured inputs.

Inputs: the two of ``specs/backends/lava.md`` (seed 0) and three unseen ones (seeds 1, 1, 12345). Settings:
8-bit weights (netx), the most bits per layer that Loihi's 16-bit activation allows (two 8-bit synapses),
and, for the ceiling, 16 and 20 bits without Loihi's activation and voltage limits (not deployable).

Usage: ``python benchmarks/lava_rounding.py``. Results: ``benchmarks/results/loihi/rounding.md``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from snnx.api import prepare
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi.cuba import CubaLayer
from snnx.plugins.loihi.precision import unrolled
from snnx.plugins.loihi.quantise import ACTIVATION_MAX, MAX_WEIGHT_BITS, SYNAPSE_BITS, max_activation, quantise_layer

CNN = "tests/data/nir-samples/cnn_sinabs.nir"
#: (p, T, batch, seed): the spec's two inputs, then three the methods were not looked at on.
INPUTS = [(0.03, 100, 2, 0), (0.02, 200, 4, 0), (0.03, 100, 2, 1), (0.02, 200, 4, 1), (0.025, 150, 4, 12345)]
SYNTHETIC = (0.025, 100, 2, 99)
VOLTAGE_LIMIT = (1 << 17) - 1  # Loihi's 24-bit voltage in weight units (6 fractional bits)


def nearest(x: np.ndarray) -> np.ndarray:
    """Each weight rounded on its own."""
    return np.round(x)


def balanced(x: np.ndarray) -> np.ndarray:
    """Per row, the ``round(Σ frac)`` weights with the largest fractional parts up, the others down."""
    low = np.floor(x)
    frac = x - low
    ups = np.round(frac.sum(axis=1)).astype(np.int64)
    rank = np.empty(x.shape, dtype=np.int64)
    rows = np.arange(x.shape[0])[:, None]
    rank[rows, np.argsort(-frac, axis=1, kind="stable")] = np.arange(x.shape[1])[None, :]
    return low + (rank < ups[:, None])


def diffusion(x: np.ndarray) -> np.ndarray:
    """Per row, error diffusion along the inputs: every prefix of the row has a summed error within ±0.5."""
    out = np.empty_like(x)
    carry = np.zeros(x.shape[0])
    for j in range(x.shape[1]):
        wanted = x[:, j] + carry
        out[:, j] = np.round(wanted)
        carry = wanted - out[:, j]
    return out


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"nearest": nearest, "balanced": balanced, "diffusion": diffusion}


def integer_weights(layer: CubaLayer, bits: int, method: str) -> tuple[np.ndarray, np.ndarray, int]:
    """The layer's weights in mantissa units as a dense ``(out, in)`` matrix (rounded by ``method`` per
    neuron, on ``lava``'s scale for ``bits``; beyond 16 bits the 16-bit scale times ``2**(bits - 16)``,
    returned in 16-bit units), the unrounded matrix, and the threshold mantissa."""
    extra = 2.0 ** max(bits - MAX_WEIGHT_BITS, 0)
    q = quantise_layer(layer, weight_bits=min(bits, MAX_WEIGHT_BITS))
    weight = np.asarray(layer.weight, dtype=np.float64)
    real = weight * q.scale * extra
    rounded = METHODS[method](real.reshape(weight.shape[0], -1)).reshape(weight.shape)
    if bits <= MAX_WEIGHT_BITS:
        e = bits - SYNAPSE_BITS
        rounded = np.clip(rounded, -128 if e == 0 else -(127 << e), 127 << e)
    if layer.kind == "conv":
        as_dense = []
        for values in (rounded, real):
            tmp = copy.copy(layer)
            tmp.weight = values
            as_dense.append(unrolled(tmp).weight)
        rounded, real = as_dense
    return rounded.reshape(rounded.shape[0], -1) / extra, real.reshape(real.shape[0], -1) / extra, q.vth


def integer_run(layers: list[tuple[np.ndarray, np.ndarray, int]], x: np.ndarray, limits: bool) -> list[np.ndarray]:
    """Every layer's spikes ``(T, B, N)``: ``v += W s + b``, clipped to Loihi's 24-bit voltage when
    ``limits``; ``v > vth`` fires and resets to 0 (Lava's bit-accurate IF layer)."""
    steps, batch = x.shape[:2]
    s = x.reshape(steps, batch, -1)
    spikes = []
    for w, bias, vth in layers:
        v = np.zeros((batch, w.shape[0]))
        out = np.zeros((steps, batch, w.shape[0]))
        for t in range(steps):
            v = v + s[t] @ w.T + bias
            if limits:
                v = np.clip(v, -VOLTAGE_LIMIT, VOLTAGE_LIMIT)
            fired = v > vth
            v[fired] = 0
            out[t] = fired
        s = out
        spikes.append(out)
    return spikes


def bernoulli(p: float, steps: int, batch: int, seed: int) -> np.ndarray:
    """N-MNIST-like input: independent events with probability ``p`` per pixel and step."""
    return (np.random.default_rng(seed).random((steps, batch, 2, 34, 34)) < p).astype(np.float64)


def main() -> None:
    graph = prepare(CNN, dt=1)
    chain = get_backend("lava")._chain_refusals(graph)[0]
    names = [layer.nodes[-1] for layer in chain.layers]
    p_syn, *rest = SYNTHETIC
    synthetic = simulate(graph, {"input": bernoulli(p_syn, *rest)}, record=True)
    rates = [p_syn] + [float(synthetic[n].mean()) for n in names[:-1]]
    print(f"assumed input rate per layer (synthetic input p = {p_syn:.1%}, seed {SYNTHETIC[-1]}): "
          + ", ".join(f"{r:.2%}" for r in rates))
    data = []
    for p, steps, batch, seed in INPUTS:
        x = bernoulli(p, steps, batch, seed)
        record = simulate(graph, {"input": x}, record=True)
        data.append((x, [record[n].reshape(steps, batch, -1) for n in names]))
    settings = {
        "8 (netx)": ([SYNAPSE_BITS] * len(names), True),
        "13/11/9/10/11 (most deployable)": ([13, 11, 9, 10, 11], True),
        "16, no Loihi limits": ([16] * len(names), False),
        "20, no Loihi limits": ([20] * len(names), False),
    }
    heads = [f"p={p:.1%} T={steps}x{batch} seed {seed}" for p, steps, batch, seed in INPUTS]
    print("\noutput spike trains equal to the reference (output spikes / reference's); layer 6 in brackets")
    print("| weight bits | rounding | deployable | " + " | ".join(heads) + " |")
    for label, (bits, limits) in settings.items():
        for method in METHODS:
            for with_bias in (False, True):
                layers = []
                for layer, b, rate in zip(chain.layers, bits, rates):
                    w, real, vth = integer_weights(layer, b, method)
                    bias = np.round(-rate * (w - real).sum(axis=1) * 64) / 64 if with_bias else np.zeros(w.shape[0])
                    layers.append((w, bias, vth))
                acts = [max_activation(np.round(w * 2.0 ** max(b - MAX_WEIGHT_BITS, 0)).astype(np.int64)) for (w, _b, _v), b in zip(layers, bits)]
                ok = limits and (all(b == SYNAPSE_BITS for b in bits) or all(a <= ACTIVATION_MAX for a in acts))
                cells = []
                for x, refs in data:
                    spikes = integer_run(layers, x, limits)
                    cells.append(
                        f"{(spikes[-1] == refs[-1]).mean():.2%} ({int(spikes[-1].sum())}/{int(refs[-1].sum())}) "
                        f"[{(spikes[2] == refs[2]).mean():.2%}]"
                    )
                name = method + (" +bias" if with_bias else "")
                print(f"| {label} | {name} | {'yes' if ok else 'no'} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
