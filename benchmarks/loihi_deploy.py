#!/usr/bin/env python
"""Loihi 2 deployment rows: converted digits models on the reference, ``lava-float`` and ``lava`` (fixed_pt).

Trains small ANNs on scikit-learn digits (an MLP 64-64-32-10, a CNN
``Conv(8,3x3)-ReLU-AvgPool(2)-Conv(16,3x3)-ReLU-Linear`` and ``examples/train_digits_cnn.py``'s
``Conv(16)-BN-ReLU-AvgPool-Conv(32)-ReLU-MaxPool-Linear(64)-ReLU-Linear``, whose MaxPool tree ``lava``
deploys through the layering pass; torch, one thread, 15 epochs), exports them to
ONNX and converts them with ``snnx.convert`` retargeted to Loihi (``--target loihi``: IF reset to zero
from zero state), then runs the test images for ``T`` steps on each backend and reports accuracy,
agreement with the reference simulation of the same graph, and simulation speed (time steps per second
of the whole batch streamed as one Lava run, with lowering and Lava's compile included, and excluded:
the extra windows over the extra time against a one-sample run of the same model).

    .venv/bin/python benchmarks/loihi_deploy.py                # 200 test images, T = 16, 32, 64
    .venv/bin/python benchmarks/loihi_deploy.py --samples 50   # a smoke run
    .venv/bin/python benchmarks/loihi_deploy.py --models cnn_maxpool --timesteps 32
"""

from __future__ import annotations

import argparse
import io

import numpy as np


def _models():
    from torch import nn

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    cnn = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 16, 10),
    )
    cnn_maxpool = nn.Sequential(  # examples/train_digits_cnn.py
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    return {"mlp": mlp, "cnn": cnn, "cnn_maxpool": cnn_maxpool}


def _onnx(model, example):
    import onnx
    import torch

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, (torch.as_tensor(example[:1]),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--timesteps", default="16,32,64")
    parser.add_argument("--models", default="mlp,cnn,cnn_maxpool", help="comma-separated: mlp, cnn, cnn_maxpool")
    args = parser.parse_args()
    import torch
    from sklearn.datasets import load_digits

    import snnx
    from snnx.api import prepare
    from snnx.bench.loihi import measure_speed
    from snnx.bench.training import train_classifier
    from snnx.convert.targets import retarget
    from snnx.ir.reference import simulate
    from snnx.plugins import get_backend

    torch.set_num_threads(1)
    torch.manual_seed(0)  # the models' initial weights
    steps = sorted(int(t) for t in args.timesteps.split(","))
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target
    xtr, ytr, xte, yte = x[:1400], y[:1400], x[1400 : 1400 + args.samples], y[1400 : 1400 + args.samples]
    print("| model | backend | T | ANN acc | SNN acc | agrees with reference | steps/s incl. lowering + compile | excl. |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    models = {k: v for k, v in _models().items() if k in args.models.split(",")}
    for name, model in models.items():
        proto = _onnx(train_classifier(model, xtr, ytr, epochs=15), xte)
        with torch.no_grad():
            ann = model(torch.as_tensor(xte)).argmax(1).numpy()
        converted = snnx.convert(proto, xtr[:500])
        result = retarget(converted, "loihi")
        graph = prepare(result.graph)
        (inp,) = graph.input_names
        (out,) = graph.output_names
        xs = np.broadcast_to(xte.astype(np.float64)[None], (steps[-1], *xte.shape))
        # The conversion's own target (reset subtract, v_init = threshold/2) as the yardstick.
        any_ref = simulate(prepare(converted.graph), {inp: xs})[out]
        for t in steps:
            pred = any_ref[t - 1].reshape(len(xte), -1).argmax(1)
            print(f"| {name} | reference, target any | {t} | {np.mean(ann == yte):.2%} | {np.mean(pred == yte):.2%} | | | |")
        runs = {"reference": (simulate(graph, {inp: xs})[out], None)}
        for backend in ("lava-float", "lava"):
            speed, v = measure_speed(graph, np.ascontiguousarray(xs), backend)
            runs[backend] = (v, speed)
        ref = runs["reference"][0]
        for backend, (v, speed) in runs.items():
            for t in steps:
                pred = v[t - 1].reshape(len(xte), -1).argmax(1)
                agree = np.mean(pred == ref[t - 1].reshape(len(xte), -1).argmax(1))
                rate = f"{speed.steps_per_second_total:.0f} | {speed.steps_per_second_marginal:.0f}" if speed else " |"
                print(f"| {name} | {backend}, target loihi | {t} | {np.mean(ann == yte):.2%} | {np.mean(pred == yte):.2%} "
                      f"| {agree:.1%} | {rate} |", flush=True)
            if speed:
                print(f"<!-- {name} {backend}: lower {speed.lower_seconds:.2f} s, compile + 1 sample "
                      f"{speed.one_sample_seconds:.2f} s, {speed.samples} samples {speed.run_seconds:.2f} s -->")
        print(f"<!-- {name} lava quantisation:\n{get_backend('lava').lower(graph).report()}\n-->")


if __name__ == "__main__":
    main()
