#!/usr/bin/env python
"""Integer graphs on Loihi: ``snnx convert --integer K --target loihi`` on the reference and on ``lava``.

Two digits models (1,400 train / 397 test): the MLP 64-64-32-10 of ``lowlatency_models.py`` and a CNN
``Conv(1→8, 3×3) BN ReLU AvgPool2 Conv(8→16, 3×3) BN ReLU Flatten Linear`` (the ``cnn`` kind with
average instead of max pooling, which a Loihi chain cannot hold), both trained there (cached in
``$SNNX_BENCH_CACHE``). Each is converted with ``--steps 8`` (500 calibration samples) five ways: float
and ``--integer K`` for target ``any`` (reset subtract, ``v_init`` at half the threshold) and for target
``loihi`` (reset to zero from zero state, scales fitted to that neuron: ``snnx.convert.resetzero``), and
``--integer K`` for target ``loihi`` without that fit, exactly as ``snnx convert`` does it
(``apply_tuning`` then ``retarget``). The integer Loihi graph also runs on ``lava`` (Lava's bit-accurate Loihi 2 model,
fixed_pt) for the whole test set at the longest ``T``; accuracy at a shorter ``T`` is read from the same
run (each sample's window starts from zero state, so the first ``t`` steps of a longer window are the
run at ``T = t``). Every hidden IF layer is compared spike for spike with the reference by running its
prefix graph (``snnx.api.prefix``: the layers up to it) on ``lava``, as ``snnx check`` does.

With ``--finetune-seeds 0,1`` the integer Loihi graph is also converted with ``--finetune`` on the
training images (``snnx.convert.finetune_loihi``: through the reset-to-zero neuron, a fifth held out to
choose the epoch), once per seed, and measured the same way, ``lava`` included.

With ``--atrlif`` (or ``--only-atrlif``) the graphs of ``--target loihi-atrlif`` are measured too: they keep
target ``any``'s reset "subtract" and ``v_init = ⌈θ/2⌉``, with ``--integer``'s thresholds bounded by Loihi 2's
ATRLIF neuron, on which ``lava`` runs them (``snnx.plugins.loihi.subtract``; one compiled Lava run with the
state reset between samples;
``--lava-samples`` and ``--layer-samples`` limit the lava runs to the first images).

    PYTHONPATH=. python benchmarks/loihi_integer.py [--kinds mlp,cnn_avgpool] [--bits 8] [--timesteps 8,16,32]
        [--finetune-seeds 0,1 --epochs 8] [--only-loihi] [--half-threshold-init] [--atrlif | --only-atrlif]
        [--lava-samples N] [--layer-samples N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import lowlatency_models as zoo  # noqa: E402

from snnx.api import prefix, prepare  # noqa: E402
from snnx.convert import convert  # noqa: E402
from snnx.convert.targets import retarget  # noqa: E402
from snnx.convert.tuning import apply_tuning  # noqa: E402
from snnx.ir.reference import simulate  # noqa: E402
from snnx.plugins import get_backend  # noqa: E402


def cnn_avgpool() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10),
    )


def load(kind: str):
    """``(onnx model, digits splits)``; ``cnn_avgpool`` is trained here like ``lowlatency_models``' cnn."""
    if kind != "cnn_avgpool":
        return zoo.load(kind)
    ds = zoo.digits()
    path = zoo.CACHE / f"{kind}.onnx"
    if not path.exists():
        model = zoo.train(cnn_avgpool(), ds[0], ds[1], zoo.EPOCHS["cnn"])
        zoo.CACHE.mkdir(parents=True, exist_ok=True)
        onnx.save(zoo.export(model, ds[2]), path)
    return onnx.load(path), ds


def ann_accuracy(proto: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    return float(np.mean(logits.argmax(1) == y))


def converted(
    proto, calib, target: str, bits: int | None, fit: bool = True, finetune=None, seed: int = 0, epochs: int = 5,
    half: bool = False,
):
    """What ``snnx convert --steps 8 [--integer bits] --target target [--finetune train.npz]`` writes.

    :param fit: False: without target loihi's reset-to-zero fit (``snnx.convert.resetzero``) and without
        the output gains (``snnx.convert.rategain``), as ``snnx convert`` wrote it before those stages existed.
    :param finetune: ``(x, y)`` fine-tuning data (``--finetune``), fine-tuned with ``seed``.
    :param half: ``--half-threshold-init`` (target loihi only).
    """
    result = convert(proto, calib, steps=8)
    result.half_threshold_init = half
    # rate_gains off: without --steps apply_tuning would otherwise fit the output gains, a later stage too.
    tuning = {"integer_bits": bits, "steps": 8 if fit else None, "finetune_path": finetune, "seed": seed, "rate_gains": False}
    if finetune is not None:
        tuning["epochs"] = epochs
    lines = apply_tuning(result, tuning, proto, target=target, calib=calib)
    return (retarget(result, target) if target != "any" else result), lines


def accuracies(trace: np.ndarray, y: np.ndarray, steps: list[int]) -> list[float]:
    return [float(np.mean(trace[t - 1].reshape(len(y), -1).argmax(1) == y)) for t in steps]


def integer_check(graph) -> bool:
    """Every weight, bias, threshold and initial state of the graph is an integer."""
    for node in graph.nodes.values():
        for attr in ("weight", "bias", "v_threshold", "r", "scale"):
            value = getattr(node, attr, None)
            if value is not None and not np.array_equal(np.asarray(value), np.rint(np.asarray(value))):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="mlp,cnn_avgpool")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--timesteps", default="8,16,32")
    parser.add_argument("--samples", type=int, default=None, help="test images (default: all 397)")
    parser.add_argument(
        "--finetune-seeds", default="",
        help="also measure --finetune (the training images; a fifth held out) for these seeds, on lava too",
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs of --finetune")
    parser.add_argument(
        "--half-threshold-init", action="store_true",
        help="also measure the integer Loihi graph with --half-threshold-init (and its --finetune seeds)",
    )
    parser.add_argument("--only-loihi", action="store_true", help="skip the float and target-any variants and the unfitted graph")
    parser.add_argument(
        "--atrlif", action="store_true",
        help="also measure --target loihi-atrlif (reset subtract on Loihi 2's ATRLIF neuron) and its --finetune seeds",
    )
    parser.add_argument(
        "--only-atrlif", action="store_true", help="measure only the --target loihi-atrlif variants (implies --atrlif)",
    )
    parser.add_argument(
        "--lava-samples", type=int, default=None,
        help="run the whole graph on lava for the first N test images only (the reference: all of them)",
    )
    parser.add_argument(
        "--layer-samples", type=int, default=None,
        help="compare each hidden layer's spikes on lava on the first N test images (default: all)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = sorted(int(t) for t in args.timesteps.split(","))
    lava = get_backend("lava")
    rows = []
    for kind in args.kinds.split(","):
        proto, (xtr, ytr, xte, yte) = load(kind)
        if args.samples:
            xte, yte = xte[: args.samples], yte[: args.samples]
        calib = xtr[:500]
        xs = np.broadcast_to(xte.astype(np.float64)[None], (steps[-1], *xte.shape))
        ann = ann_accuracy(proto, xte, yte)
        row = {"model": kind, "ANN": ann, "lava": {}, "readout max |dv|": {}, "same class": {}, "lava steps/s": {}, "layers": {}}
        int_loihi = f"int{args.bits}, loihi"
        seeds = [int(s) for s in args.finetune_seeds.split(",") if s]
        variants = [
            ("float, any", "any", None, True, None, 0, False),
            (f"int{args.bits}, any", "any", args.bits, True, None, 0, False),
            (f"int{args.bits}, loihi, no fit", "loihi", args.bits, False, None, 0, False),
            ("float, loihi", "loihi", None, True, None, 0, False),
        ] * (not args.only_loihi) + [(int_loihi, "loihi", args.bits, True, None, 0, False)] + [
            (f"{int_loihi}, finetune seed {s}", "loihi", args.bits, True, (xtr, ytr), s, False) for s in seeds
        ]
        if args.only_atrlif:
            variants = []
        if args.atrlif or args.only_atrlif:
            atr = f"int{args.bits}, loihi-atrlif"
            variants += [(atr, "loihi-atrlif", args.bits, True, None, 0, False)] + [
                (f"{atr}, finetune seed {s}", "loihi-atrlif", args.bits, True, (xtr, ytr), s, False) for s in seeds
            ]
        if args.half_threshold_init:
            half = f"{int_loihi}, half-threshold init"
            variants += [(half, "loihi", args.bits, True, None, 0, True)] + [
                (f"{half}, finetune seed {s}", "loihi", args.bits, True, (xtr, ytr), s, True) for s in seeds
            ]
        for label, target, bits, fit, tune, seed, half_init in variants:
            start = time.perf_counter()
            result, lines = converted(proto, calib, target, bits, fit, tune, seed, args.epochs, half_init)
            lines = [*lines, f"conversion {time.perf_counter() - start:.1f} s"]
            prepared = prepare(result.graph)
            (inp,) = prepared.input_names
            (out,) = prepared.output_names
            record = simulate(prepared, {inp: xs}, record=True)
            row[label] = accuracies(record[out], yte, steps)
            print(f"{kind} {label}: reference {row[label]}  {'; '.join(lines)}", flush=True)
            if not label.startswith(int_loihi):
                continue
            assert integer_check(result.graph), "the integer Loihi graph has a non-integer parameter"
            model = lava.lower(prepared, exact=True)  # refuses unless every layer is exact at its scale
            print(model.report(), flush=True)
            start = time.perf_counter()
            m = args.lava_samples or xs.shape[1]
            v = lava.run(model, {inp: xs[:, :m]})[out]
            seconds = time.perf_counter() - start
            ref_out = record[out][:, :m]
            row["lava"][label] = accuracies(v, yte[:m], steps)
            if m < len(yte):
                row.setdefault("lava subset", {})[label] = (m, accuracies(ref_out, yte[:m], steps))
            row["readout max |dv|"][label] = float(np.max(np.abs(v - ref_out)))
            row["same class"][label] = [
                float(np.mean(v[t - 1].reshape(m, -1).argmax(1) == ref_out[t - 1].reshape(m, -1).argmax(1)))
                for t in steps
            ]
            row["lava steps/s"][label] = steps[-1] * m / seconds
            layers = {}
            for name in prepared.schedule.order:
                if type(prepared.nodes[name]).__name__ != "IF":
                    continue
                part = prefix(prepared, name)
                (pout,) = part.output_names
                n = args.layer_samples or xs.shape[1]
                got = lava.run(lava.lower(part, exact=True), {inp: xs[:, :n]})[pout]
                want = record[name][:, :n]
                layers[name] = (int(np.sum(got != want)), int(want.sum()), int(want.size))
                print(f"  {name}: {layers[name][0]} mismatches / {layers[name][1]} spikes ({layers[name][2]} neuron-steps)", flush=True)
            row["layers"][label] = layers
        rows.append(row)
        print(row, flush=True)
    print()
    fmt = lambda a: " / ".join(f"{100 * x:.1f}" for x in a)  # noqa: E731
    if not (args.only_loihi or args.only_atrlif):
        head = "| model | ANN | float --steps 8, any | int, any | int, loihi, no fit | float, loihi |"
        print(head)
        print("|---|---:|---|---|---|---|")
        for r in rows:
            keys = [k for k in r if k.startswith("int") and "loihi" not in k] + [k for k in r if k.endswith("no fit")]
            print(f"| {r['model']} | {100 * r['ANN']:.1f} | {fmt(r['float, any'])} | {fmt(r[keys[0]])} | {fmt(r[keys[1]])} | {fmt(r['float, loihi'])} |")
        print()
    print(
        "| model | ANN | integer Loihi graph | reference | `lava` | same class | spikes equal (mismatches / spikes per IF layer) "
        "| readout max \\|Δv\\| | `lava` steps/s |"
    )
    print("|---|---:|---|---|---|---|---|---:|---:|")
    for r in rows:
        for label, acc in r["lava"].items():
            layers = ", ".join(f"{m} / {s}" for m, s, _n in r["layers"][label].values())
            lava_cell = fmt(acc)
            if label in r.get("lava subset", {}):
                m, ref_acc = r["lava subset"][label]
                lava_cell += f" (first {m} images; reference on them {fmt(ref_acc)})"
            print(
                f"| {r['model']} | {100 * r['ANN']:.1f} | {label} | {fmt(r[label])} | {lava_cell} | {fmt(r['same class'][label])} "
                f"| {layers} | {r['readout max |dv|'][label]:.1e} | {r['lava steps/s'][label]:.0f} |"
            )
    print(f"\naccuracies in % at T = {' / '.join(map(str, steps))}; {len(yte)} test images")


if __name__ == "__main__":
    main()
