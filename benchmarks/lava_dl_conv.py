#!/usr/bin/env python
"""A convolutional SNN trained with ``lava-dl`` and deployed on Loihi 2 fixed point (``lava``): accuracy and speed.

``snnx.bench.loihi.conv_digits_graph`` (Conv(1→8, 3×3) LIF → SumPool 2 → Flatten → Affine(→10) LIF,
rate code, T = 16) on scikit-learn digits: a seeded split of ``--train`` training images (the rest is
the test set), trained ``--epochs`` in ``lava-dl`` (float32, one torch thread), exported with ``raise_``,
then the whole test set runs on the reference (the trained float model) and on ``lava`` (fixed_pt) as
one Lava run; then ``--grid-epochs`` of fine-tuning with the weights on Loihi's power-of-two grid
(``snnx.plugins.loihi.slayer.loihi_grid``) and the same again. Per seed (the initial weights and the
data order) and model: accuracies, spike / prediction agreement, and Lava's speed with lowering and
compile included and excluded (a one-sample run of the same model gives the compile and start-up time).

    .venv/bin/python benchmarks/lava_dl_conv.py                      # 1000 train / 797 test, seeds 0,1,2
    .venv/bin/python benchmarks/lava_dl_conv.py --seeds 0 --epochs 3  # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=1000, help="training images (the rest are the test set)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--grid-epochs", type=int, default=2, help="fine-tuning epochs on Loihi's grid (0: none)")
    args = parser.parse_args()
    import torch
    from sklearn.datasets import load_digits

    import snnx
    from snnx.bench.loihi import conv_digits_graph, deploy, measure_speed, rate_code, train_spike_counts
    from snnx.plugins import get_backend
    from snnx.plugins.loihi.slayer import loihi_grid

    torch.set_num_threads(1)
    digits = load_digits()
    images, labels = digits.images[:, None] / 16.0, digits.target
    print("| seed | model | train / test | epochs | train s | reference acc | Loihi fixed_pt acc | Δ pp | spikes equal | "
          "same class | Loihi class has the top count | lower s | compile + 1 sample s | run s | "
          "steps/s incl. | steps/s excl. |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    seeds = [int(s) for s in args.seeds.split(",")]
    first = seeds[0]
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(labels))
        train, test = order[: args.train], order[args.train :]
        net = snnx.lower(conv_digits_graph(seed=seed + 1), to="lava-dl", dtype="float32")
        x_train, x_test = rate_code(images[train], args.steps), rate_code(images[test], args.steps)
        runs = [("float", args.epochs, {"epochs": args.epochs, "seed": seed}, contextlib.nullcontext)]
        if args.grid_epochs:
            grid = {"epochs": args.grid_epochs, "lr": 1e-3, "seed": seed + 100}
            runs.append(("+ Loihi grid", args.grid_epochs, grid, lambda: loihi_grid(net)))
        for label, epochs, options, context in runs:
            start = time.perf_counter()
            with context():
                train_spike_counts(net, x_train, labels[train], **options)
            train_s = time.perf_counter() - start
            trained = get_backend("lava-dl").raise_(net)
            d = deploy(trained, x_test, labels[test])
            speed, _ = measure_speed(trained, x_test)
            print(f"| {seed} | {label} | {len(train)} / {len(test)} | {epochs} | {train_s:.1f} | "
                  f"{d.reference_accuracy:.2%} | {d.loihi_accuracy:.2%} | "
                  f"{100 * (d.loihi_accuracy - d.reference_accuracy):+.2f} | {d.spike_agreement:.2%} | "
                  f"{d.prediction_agreement:.2%} | {d.top_class_agreement:.2%} | {speed.lower_seconds:.2f} | "
                  f"{speed.one_sample_seconds:.2f} | {speed.run_seconds:.2f} | {speed.steps_per_second_total:.0f} | "
                  f"{speed.steps_per_second_marginal:.0f} |", flush=True)
            if seed == first:
                print(f"<!-- seed {seed} {label} lava quantisation:\n{snnx.lower(trained, to='lava').report()}\n-->")


if __name__ == "__main__":
    main()
