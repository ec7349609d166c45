"""Issue 15: ANN vs SNN accuracy at T = 4, 8, 64 per model kind, with and without --steps/--signed/--finetune.

    PYTHONPATH=. python benchmarks/lowlatency_table.py [--kinds mlp,cnn,...] [--out benchmarks/results/lowlatency]

Every model is trained here (``lowlatency_models.py``, cached in /tmp/snnx-issue15), converted with 500
calibration samples from the training split, fine-tuned (when asked) on the whole training split with
its labels, and evaluated on the test split on the reference simulator (digits: 397 samples; MNIST
subset: the first 500 of the 1,000 test images). One torch thread. Prints Markdown and writes
``table.md`` and ``rows.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import lowlatency_models as zoo  # noqa: E402

from snnx.convert import convert, evaluate  # noqa: E402
from snnx.convert.finetune import finetune  # noqa: E402
from snnx.convert.integer import integerise  # noqa: E402
from snnx.convert.lowlatency_report import low_bit_ops  # noqa: E402

WINDOWS = (4, 8, 64)
CONFIGS = [
    ("percentile 99.9", {}),
    ("--steps 4", {"steps": 4}),
    ("--steps 4 --signed", {"steps": 4, "signed": True}),
    ("--steps 4 --signed --finetune", {"steps": 4, "signed": True, "finetune": True}),
    ("--steps 8", {"steps": 8}),
    ("--steps 8 --finetune", {"steps": 8, "finetune": True}),
    ("--steps 8 --signed", {"steps": 8, "signed": True}),
    ("--steps 8 --signed --finetune", {"steps": 8, "signed": True, "finetune": True}),
]
CORE = [CONFIGS[i] for i in (0, 2, 3, 6, 7)]
PER_CHANNEL = [
    ("--steps 4 --signed, per-channel", {"steps": 4, "signed": True, "per_channel": True}),
    ("--steps 4 --signed --finetune, per-channel", {"steps": 4, "signed": True, "finetune": True, "per_channel": True}),
    ("--steps 8 --signed, per-channel", {"steps": 8, "signed": True, "per_channel": True}),
    ("--steps 8 --signed --finetune, per-channel", {"steps": 8, "signed": True, "finetune": True, "per_channel": True}),
]
INTEGER = [
    (f"--steps 8 --signed --integer {k}", {"steps": 8, "signed": True, "integer": k}) for k in (2, 3, 4, 8)
] + [
    (f"--steps 8 --signed --finetune --integer {k}", {"steps": 8, "signed": True, "finetune": True, "integer": k})
    for k in (4, 8)
]


def run(kind: str, label: str, cfg: dict, epochs: int) -> dict:
    proto, (xtr, ytr, xte, yte) = zoo.load(kind)
    if kind.endswith("mnist"):
        xte, yte = xte[:500], yte[:500]
    start = time.perf_counter()
    result = convert(
        proto, xtr[:500], steps=cfg.get("steps"), signed=cfg.get("signed", False), per_channel=cfg.get("per_channel", False)
    )
    row = {"kind": kind, "config": label, "convert_s": time.perf_counter() - start}
    if cfg.get("finetune"):
        info = finetune(result, (xtr, ytr), cfg.get("steps") or 8, epochs=epochs, teacher=proto)
        row["finetune_s"] = info["seconds"]
    if cfg.get("integer"):
        row["integer"] = integerise(result.graph, cfg["integer"])
    ev = evaluate(result, proto, (xte, yte), WINDOWS, metrics_samples=32)
    row["ann"] = ev.ann_accuracy
    row["snn"] = {t: ev.snn_accuracy[t] for t in WINDOWS}
    neurons = sum(ev.neurons.values()) or 1
    t_eval = cfg.get("steps") or 8
    total = sum(per_t[t_eval] for per_t in ev.spikes.values())
    neg = sum(per_t[t_eval] for per_t in ev.negative.values())
    snn_ops, ann_ops = low_bit_ops(ev.stats[t_eval])
    row.update(
        at=t_eval,
        pos_per_neuron=(total - neg) / neurons,
        neg_per_neuron=neg / neurons,
        ops_ratio=ann_ops / snn_ops,
        energy_ratio=ev.stats[t_eval].energy["cmos45"].ratio,
    )
    return row


def fmt(row: dict) -> str:
    gaps = " | ".join(f"{100 * (row['ann'] - row['snn'][t]):+.1f}" for t in WINDOWS)
    ft = f"{row['finetune_s']:.0f}" if "finetune_s" in row else ""
    return (
        f"| {row['kind']} | {row['config']} | {100 * row['ann']:.1f} | {gaps} | {ft} | "
        f"{row['pos_per_neuron']:.2f} / {row['neg_per_neuron']:.2f} | {row['ops_ratio']:.2f} | {row['energy_ratio']:.2f} |"
    )


HEADER = [
    "| model | conversion | ANN % | ANN − SNN pp, T=4 | T=8 | T=64 | fine-tune s | spikes/neuron +/− at T=steps | ANN/SNN ops (MAC=4 SOP) | ANN/SNN energy (cmos45) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default=",".join(zoo.KINDS))
    parser.add_argument("--configs", default="all", help="all, main, core (percentile and --signed rows), per-channel or integer")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--only", action="append", default=None, metavar="LABEL",
        help="keep only the configs with this exact label (repeatable), e.g. to re-measure single rows",
    )
    parser.add_argument("--out", default="benchmarks/results/lowlatency")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    print("\n".join(HEADER), flush=True)
    for kind in args.kinds.split(","):
        configs = {"all": CONFIGS, "main": CONFIGS, "core": CORE, "per-channel": PER_CHANNEL}.get(args.configs, [])
        if args.configs in ("all", "integer") and kind in ("mlp", "cnn"):
            configs = configs + INTEGER
        if args.only:
            configs = [(label, cfg) for label, cfg in configs if label in args.only]
        for label, cfg in configs:
            row = run(kind, label, cfg, args.epochs)
            rows.append(row)
            print(fmt(row), flush=True)
            (out / f"rows-{args.configs}-{args.kinds.replace(',', '_')}.json").write_text(
                json.dumps(rows, indent=1, default=float)
            )
    (out / f"table-{args.configs}-{args.kinds.replace(',', '_')}.md").write_text(
        "\n".join([*HEADER, *map(fmt, rows)]) + "\n"
    )
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
