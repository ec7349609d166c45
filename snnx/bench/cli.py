"""``snnx bench``: the framework benchmark command (registered by :mod:`snnx.bench.plugin`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from snnx.bench.data import LOADERS
from snnx.bench.direct import TRAINING_BACKENDS
from snnx.bench.models import ANN_KINDS, ARCHS
from snnx.cli import device_option


def _csv(value: str | None, cast=str) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(cast(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}") from exc


def _seeds(value: str | None) -> int | tuple[int, ...] | None:
    """``--seed 0`` is one seed, ``--seed 0,1,2`` several; anything else is one line and exit code 2."""
    if value is None:
        return None
    from snnx.errors import SnnxError

    parts = [v.strip() for v in value.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):  # also "", "0,,1", "-1", "a"
        msg = f"--seed takes integers >= 0 separated by commas (e.g. 0,1,2), got {value!r}"
        raise SnnxError(msg)
    seeds = tuple(int(p) for p in parts)
    if len(set(seeds)) != len(seeds):
        msg = f"--seed names a seed twice: {value!r}"
        raise SnnxError(msg)
    return seeds[0] if len(seeds) == 1 else seeds


@click.command(name="bench")
@click.option("--quick", is_flag=True, help="A few minutes on 2 CPU cores: digits, few epochs, a short T sweep.")
@click.option("--track", "tracks", type=click.Choice(["all", "direct", "conversion"]), default="all", show_default=True)
@click.option("--dataset", "datasets", default=None, help=f"Comma-separated: {', '.join(LOADERS)} (default digits).")
@click.option("--data-root", type=click.Path(), default=None, help="Local torchvision data root for mnist, fashion-mnist, cifar10 (no download).")
@click.option("--backends", default=None, help=f"Comma-separated training backends (default {','.join(TRAINING_BACKENDS)}).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs per backend [5; quick 4].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size [64].")
@click.option("--lr", type=float, default=None, help="Adam learning rate [5e-3].")
@click.option("--seed", default=None, metavar="N[,N...]", help="Seed for weights and data order, or several comma-separated (0,1,2): every job runs once per seed and the report adds mean ± sample std across seeds [0].")
@click.option("--steps", "-T", type=click.IntRange(min=1), default=None, help="Time steps of the direct-training SNN [8].")
@click.option("--arch", type=click.Choice(ARCHS), default=None, help="SNN architecture [strided].")
@click.option("--anns", default=None, help=f"ANNs for the conversion track, comma-separated from {', '.join(ANN_KINDS)}.")
@click.option("--timesteps", default=None, help="Conversion T sweep, comma-separated [1,2,4,...,64; quick up to 32].")
@click.option("--percentiles", default=None, help="Calibration percentiles, comma-separated [99,99.9,100; quick 99.9,100].")
@click.option("--lava-samples", type=click.IntRange(min=0), default=None, help="Test images for each ANN's Lava row (--target loihi on Loihi 2 fixed_pt, T = 32; quick 8 images, T = 16); 0: no Lava row [100].")
@click.option("--limit-train", type=click.IntRange(min=1), default=None, help="Use only the first N training samples.")
@click.option("--limit-test", type=click.IntRange(min=1), default=None, help="Use only the first N test samples.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads per worker [1]: more threads spin and slow down badly when other jobs share the cores.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True, help="Independent jobs (backend x seed; ANN x seed; ANN x seed x percentile sweeps) run at once, each in its own process with --threads torch threads.")
@click.option("--deploy-samples", type=click.IntRange(min=0), default=None, help="Test samples a lava-dl model runs on Loihi 2 (lava fixed_pt) after training, reported next to its trained accuracy; 0: none [200].")
@device_option
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default="bench-results", show_default=True, help="Where bench.json, bench.md, the plots and models go.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the JSON here ('-' prints it).")
def bench_command(quick, tracks, datasets, data_root, backends, epochs, batch_size, lr, seed, steps, arch, anns,
                  timesteps, percentiles, lava_samples, limit_train, limit_test, threads, jobs, deploy_samples, device,
                  output_dir, json_path) -> None:
    """Compare training frameworks on one NIR SNN, and sweep ANN→SNN conversion over T and percentiles.

    Direct training: the same NIR model lowered to every training backend, trained with the same Adam,
    seed, epochs, batch size and loss; per backend: time per epoch, inference time, test accuracy,
    spikes and SOPs per sample, peak memory. A backend that is not installed or refuses the model is a
    row with its reason. Conversion: ANNs trained here, exported to ONNX, converted and evaluated at
    each T: ANN vs SNN accuracy, SOPs vs ANN MACs, energy ratio (specs/metrics.md); and per ANN a Lava
    row: converted with --target loihi and run on backend lava (Loihi 2 fixed point) for a few images.

    Every job runs in its own process; --jobs N runs N at once (same results as --jobs 1, only the times
    differ). --seed 0,1,2 runs every job once per seed: a row per seed, plus mean ± sample std of accuracy
    and time per epoch per backend. Peak memory per job: the worker's ru_maxrss growth (CPU) and, on CUDA,
    torch.cuda.max_memory_allocated. --device moves direct training to a GPU; conversion stays on the CPU.
    A model trained with lava-dl is also exported and run on Loihi 2 (lava fixed_pt; --deploy-samples).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from snnx.bench.report import rich_tables
    from snnx.bench.runner import TRACKS, BenchConfig, _json_default, run_bench
    from snnx.device import check_available

    seed = _seeds(seed)  # bad seeds are one line before any work
    check_available(device)  # a missing GPU is one line before any data is loaded

    overrides = {
        "datasets": _csv(datasets),
        "tracks": TRACKS if tracks == "all" else (tracks,),
        "backends": _csv(backends),
        "data_root": data_root,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "steps": steps,
        "arch": arch,
        "anns": _csv(anns),
        "timesteps": _csv(timesteps, int),
        "percentiles": _csv(percentiles, float),
        "lava_samples": lava_samples,
        "limit_train": limit_train,
        "limit_test": limit_test,
        "threads": threads,
        "jobs": jobs,
        "device": device,
        "deploy_samples": deploy_samples,
    }
    if quick:
        config = BenchConfig.quick(**overrides)
    else:
        config = BenchConfig(**{k: v for k, v in overrides.items() if v is not None})
    err = Console(stderr=True)
    out = Console()
    if not out.is_terminal:  # a log file or a pipe: do not fold the tables to 80 columns
        out = Console(width=220)
    tasks: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=False,
    ) as bar:
        def on_progress(task: str, advance: float | None, total: float, completed: float | None = None) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total)
            if completed is not None:
                bar.update(tasks[task], completed=completed, total=total)
            elif advance:
                bar.advance(tasks[task], advance)

        result = run_bench(config, output_dir, on_progress)
    if json_path == "-":
        click.echo(json.dumps(result.to_dict(), indent=2, default=_json_default))
        return
    for table in rich_tables(result):
        out.print(table)
    out.print(f"finished in {result.seconds:.0f} s; wrote {', '.join(str(Path(f).name) for f in result.files)} to {output_dir}/")
    if json_path is not None:
        shutil.copyfile(Path(output_dir) / "bench.json", json_path)
