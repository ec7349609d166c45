"""The NIR paper's Sinabs CNN on Loihi 2 with ``lava``'s ``weight_bits`` (two 8-bit synapses per connection).

For each weight-bit setting: the spike trains of every IF layer and of the output compared with the
reference simulator (dt = 1, Bernoulli input events, seed 0), on two inputs (p = 3 %, T = 100, 2 samples;
p = 2 %, T = 200, 4 samples), and the worst-case per-step activation of each layer (Loihi's ``a_in`` is
16-bit). Two ways of computing the fixed-point network:

* ``integer``: the chain's quantised integer weights and thresholds in numpy (``v += W s``; ``v > vth``
  fires and resets to 0, the arithmetic of Lava's bit-accurate IF layer: ``iDecay = 4096``, ``vDecay = 0``),
  for every layer at once and for settings that Loihi cannot run (beyond the 16-bit activation);
* ``--lava``: the deployable settings through ``snnx``'s ``lava`` backend on Lava's ``fixed_pt`` model
  (the output only; lowering and the run timed separately), which must equal the integer model.

Usage: ``python benchmarks/lava_precision.py [--lava] [SPEC ...]`` with SPEC a weight_bits value as JSON
(``8``, ``11``, ``'{"*": 11, "6": 9}'``); default: 8, 10, 11, 12, 16 and the largest deployable per layer.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from snnx.api import prepare
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi.precision import layer_bits, unrolled
from snnx.plugins.loihi.quantise import ACTIVATION_MAX, MAX_WEIGHT_BITS, SYNAPSE_BITS, quantise_layer

CNN = "tests/data/nir-samples/cnn_sinabs.nir"
INPUTS = [(0.03, 100, 2), (0.02, 200, 4)]


def deployable_bits(layers: list) -> list[int]:
    """Per layer, the most weight bits whose worst-case activation fits Loihi's 16-bit ``a_in``."""
    out = []
    for layer in layers:
        bits = [b for b in range(SYNAPSE_BITS, MAX_WEIGHT_BITS + 1) if quantise_layer(layer, weight_bits=b).max_activation <= ACTIVATION_MAX]
        out.append(max(bits))
    return out


def integer_run(layers: list, bits: list[int], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's spikes ``(T, B, N)`` of the integer network (one window, zero initial state)."""
    steps, batch = x.shape[:2]
    s = x.reshape(steps, batch, -1)
    spikes = []
    for layer, b in zip(layers, bits):
        q = quantise_layer(layer, weight_bits=b)
        w = q.weight.astype(np.float64)  # integers below 2**53: exact
        v = np.zeros((batch, w.shape[0]))
        out = np.zeros((steps, batch, w.shape[0]))
        for t in range(steps):
            v = np.clip(v + s[t] @ w.T, -(1 << 17) + 1, (1 << 17) - 1)  # Loihi's 24-bit v, in units of 1/64 << 6
            fired = v > q.vth
            v[fired] = 0
            out[t] = fired
        s = out
        spikes.append(out)
    return spikes


def recall_precision(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Share of the reference's spikes that ``out`` has at the same (t, sample, neuron), and share of
    ``out``'s spikes that the reference has there (NaN where the denominator has no spike)."""
    both = float(np.logical_and(out > 0, ref > 0).sum())
    n_ref, n_out = float((ref > 0).sum()), float((out > 0).sum())
    return (both / n_ref if n_ref else float("nan")), (both / n_out if n_out else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", help="weight_bits values as JSON")
    parser.add_argument("--lava", action="store_true", help="also run the deployable settings on Lava's fixed_pt")
    parser.add_argument("--input", nargs=3, type=float, action="append", metavar=("P", "T", "BATCH"),
                        help="Bernoulli input instead of the defaults (repeatable), e.g. --input 0.05 200 4")
    args = parser.parse_args()
    graph = prepare(CNN, dt=1)
    backend = get_backend("lava")
    chain = backend._chain_refusals(graph)[0]
    layers = [unrolled(layer) for layer in chain.layers]
    names = [layer.nodes[-1] for layer in chain.layers]
    fit = deployable_bits(layers)
    specs = [json.loads(s) for s in args.specs] or [8, 10, 11, 12, 16, dict(zip(names, fit))]
    print(f"largest deployable weight bits per layer {names}: {fit}")
    for p, steps, batch in [(p, int(t), int(b)) for p, t, b in args.input] if args.input else INPUTS:
        x = (np.random.default_rng(0).random((steps, batch, 2, 34, 34)) < p).astype(np.float64)
        record = simulate(graph, {"input": x}, record=True)
        refs = [record[n].reshape(steps, batch, -1) for n in names]
        print(f"\np = {p:.0%}, T = {steps}, {batch} samples: reference output spikes {int(refs[-1].sum())} of {refs[-1].size}")
        print("| weight_bits | deployable | " + " | ".join(f"layer {n}" for n in names[:-1]) + " | output (all silent) | recall / precision | output spikes | lava |")
        for spec in specs:
            bits = layer_bits(spec, chain)
            acts = [quantise_layer(layer, weight_bits=b).max_activation for layer, b in zip(layers, bits)]
            ok = all(a <= ACTIVATION_MAX for a in acts) or all(b == SYNAPSE_BITS for b in bits)
            spikes = integer_run(layers, bits, x)
            agree = [f"{(a == r).mean():.2%}" for a, r in zip(spikes, refs)]
            # an all-silent output would score this much on the slot metric: the floor to read it against
            agree[-1] += f" ({1 - (refs[-1] > 0).mean():.2%})"
            recall, precision = recall_precision(spikes[-1], refs[-1])
            lava = ""
            if args.lava and ok:
                t0 = time.perf_counter()
                model = backend.lower(graph, weight_bits=spec)
                t1 = time.perf_counter()
                out = backend.run(model, {"input": x})["output"]
                t2 = time.perf_counter()
                same = np.array_equal(out.reshape(spikes[-1].shape), spikes[-1])
                total = steps * batch + model.latency
                lava = (
                    f"{(out == refs[-1].reshape(out.shape)).mean():.2%} ({int(out.sum())} spikes; = integer model: {same}); "
                    f"lower {t1 - t0:.1f} s, run {t2 - t1:.1f} s = {total / (t2 - t1):.1f} steps/s incl. compile"
                )
            where = "yes" if ok else "no: max|a| " + ", ".join(str(a) for a in acts if a > ACTIVATION_MAX)
            print(f"| {json.dumps(spec)} | {where} | " + " | ".join(agree) + f" | {recall:.1%} / {precision:.1%} | {int(spikes[-1].sum())} | {lava} |")


if __name__ == "__main__":
    main()
