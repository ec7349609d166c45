"""Run both tracks of ``snnx bench`` and write the JSON, the table and the plots.

:func:`run_bench` is the Python entry point the command calls. It reports progress through a callback
(``on_progress(task, advance, total)``) so the command can drive a rich progress bar.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from snnx.bench import data as data_mod
from snnx.bench.conversion import ConversionRow, lava_job, sweep_job, train_export_job
from snnx.bench.direct import TRAINING_BACKENDS, DirectJob, DirectRow, availability, run_isolated
from snnx.bench.models import ANN_KINDS, SnnSpec, build_snn
from snnx.bench.parallel import map_jobs
from snnx.bench.parallel import run_isolated as run_job
from snnx.bench.result import BenchResult
from snnx.errors import SnnxError

TRACKS = ("direct", "conversion")


@dataclass
class BenchConfig:
    """Every knob of a run (stored in the JSON next to the results)."""

    datasets: tuple[str, ...] = ("digits",)
    tracks: tuple[str, ...] = TRACKS
    backends: tuple[str, ...] = TRAINING_BACKENDS
    data_root: str | None = None
    epochs: int = 5
    batch_size: int = 64
    lr: float = 5e-3
    #: Seed of the initial weights and the data order, or several: every job of both tracks runs once per
    #: seed (rows carry their seed) and the report adds mean ± sample std across seeds per backend.
    seed: int | tuple[int, ...] = 0
    steps: int = 8
    arch: str = "strided"
    channels: tuple[int, int] = (8, 16)
    limit_train: int | None = None
    limit_test: int | None = None
    anns: tuple[str, ...] = ANN_KINDS
    ann_epochs: int = 10
    timesteps: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    percentiles: tuple[float, ...] = (99.0, 99.9, 100.0)
    calib_samples: int = 500
    #: The Lava row per ANN (``--target loihi`` on Loihi 2 fixed point): test images and T; 0 images: none.
    lava_samples: int = 100
    lava_steps: int = 32
    stats_samples: int = 256
    # One thread per worker: with two, torch's OpenMP barriers spin, and any other job on a 2-core
    # machine made epochs 15-20x slower in our runs; one thread costs ~20 % on an idle machine.
    threads: int = 1
    backend_timeout: float | None = 1800.0
    #: Independent jobs run at once, each in its own process with ``threads`` torch threads.
    jobs: int = 1
    #: Where the direct track trains (``cpu``, ``cuda``, ``cuda:N``, ``mps``); conversion sweeps run on
    #: the numpy reference, on the CPU.
    device: str = "cpu"
    #: Test samples a lava-dl model runs on Loihi 2 (``lava`` fixed_pt) after training; 0: no deployment.
    deploy_samples: int = 200

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """A run that fits in a few minutes on 2 CPU cores: digits only, few epochs, short sweep."""
        base = {
            "datasets": ("digits",),
            "epochs": 4,
            "ann_epochs": 8,
            "timesteps": (1, 2, 4, 8, 16, 32),
            "percentiles": (99.9, 100.0),
            "limit_test": None,
            # Lava's Python model of the chip runs ~100-200 steps/s here: a handful of images.
            "lava_samples": 8,
            "lava_steps": 16,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds to run, in order (one for an ``int`` ``seed``)."""
        return (self.seed,) if isinstance(self.seed, int) else tuple(self.seed)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        # Timings are only comparable on a quiet machine; the load says whether it was.
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    for dist in ("snnx", "torch", "snntorch", "norse", "spikingjelly", "lava-dl", "lava-nc", "nir", "onnx", "onnxruntime"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def check_datasets(config: BenchConfig) -> None:
    """Fail before any work when a data set name is unknown or its data root is missing."""
    for name in config.datasets:
        if name not in data_mod.LOADERS:
            msg = f"unknown data set {name!r}; choose from {', '.join(data_mod.LOADERS)}"
            raise SnnxError(msg)
        if data_mod.LOADERS[name][1]:
            data_mod.require_root(config.data_root, name)
    for track in config.tracks:
        if track not in TRACKS:
            msg = f"unknown track {track!r}; choose from {', '.join(TRACKS)}"
            raise SnnxError(msg)
    seeds = config.seeds
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        msg = f"seeds must be one or more integers >= 0, got {config.seed!r}"
        raise SnnxError(msg)
    if len(set(seeds)) != len(seeds):
        msg = f"a seed is given twice in {', '.join(map(str, seeds))}"
        raise SnnxError(msg)


def _seed_suffix(config: BenchConfig, seed: int, sep: str) -> str:
    """``""`` for a single-seed run (names as before seeds were a list), else ``sep`` + the seed."""
    return f"{sep}{seed}" if len(config.seeds) > 1 else ""


def run_bench(config: BenchConfig, out_dir: str | os.PathLike, on_progress: Any = None) -> BenchResult:
    """Run the configured tracks on every data set; writes ``bench.json`` and plots to ``out_dir``.

    Direct training is one job per (backend, seed); conversion one per (ANN, seed) to train and one per
    (ANN, seed, percentile) to sweep. All run ``config.jobs`` at a time; rows come back in that order.
    """
    import snnx

    check_datasets(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = on_progress or (lambda *a, **k: None)
    result = BenchResult(config=_config_dict(config), environment=_versions())
    start = time.perf_counter()
    for name in config.datasets:
        ds = data_mod.load(name, config.data_root).limit(config.limit_train, config.limit_test)
        if "direct" in config.tracks:
            specs: dict[int, tuple[SnnSpec, Path]] = {}
            for seed in config.seeds:  # the seed sets the initial weights, stored in the NIR graph
                spec = SnnSpec(channels=config.channels, arch=config.arch, seed=seed)
                graph = build_snn(spec, ds.shape, ds.classes)
                graph_path = out / f"snn_{name}_{spec.arch}{_seed_suffix(config, seed, '_seed')}.nir"
                snnx.save(graph, str(graph_path))
                result.files.append(str(graph_path))
                specs[seed] = (spec, graph_path)
            # Every backend is checked before any worker starts: importing a framework (lava) may set
            # the global multiprocessing start method, which fails once a process has been spawned.
            # The seeds change weights only, so one graph answers for all of them.
            refused = {backend: availability(backend, graph, config.device) for backend in config.backends}
            items = [(backend, seed) for backend in config.backends for seed in config.seeds]
            for backend, seed in items:  # every task exists before worker threads report on them
                progress(f"direct {name}: {backend}{_seed_suffix(config, seed, ' seed ')}", 0, config.epochs)

            def train_one(item: tuple[str, int], name: str = name, specs: dict = specs,
                          ds: data_mod.Dataset = ds) -> DirectRow:
                backend, seed = item
                spec, graph_path = specs[seed]
                task = f"direct {name}: {backend}{_seed_suffix(config, seed, ' seed ')}"
                row = refused[backend]
                if row is not None:
                    row = replace(row)  # one row per seed
                else:
                    job = DirectJob(
                        backend, str(graph_path), name, ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                        steps=config.steps, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        seed=seed, readout=spec.readout, stats_samples=config.stats_samples,
                        threads=config.threads, device=config.device, deploy_samples=config.deploy_samples,
                    )

                    def on_event(event: tuple) -> None:
                        _kind, _backend, epoch, batch, batches = event
                        progress(task, None, config.epochs, completed=epoch + batch / batches)

                    row = run_isolated(job, on_event, timeout=config.backend_timeout)
                row.dataset = name
                row.seed = seed
                progress(task, None, config.epochs, completed=config.epochs)
                return row

            result.direct.extend(map_jobs(items, train_one, config.jobs))
        if "conversion" in config.tracks:
            result.conversion.extend(_conversion_track(config, name, ds, out, progress, result.files))
    result.seconds = time.perf_counter() - start
    result.environment["load_average_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    from snnx.bench.report import write_plots

    result.files.extend(write_plots(result, out))
    json_path = out / "bench.json"
    result.files.append(str(json_path))
    json_path.write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
    return result


def _conversion_track(
    config: BenchConfig, name: str, ds: data_mod.Dataset, out: Path, progress: Any, files: list[str]
) -> list[ConversionRow]:
    """Train and export every (ANN, seed) (one job each), then sweep every (ANN, seed, percentile) (one job each).

    Jobs run in worker processes, ``config.jobs`` at a time (:mod:`snnx.bench.parallel`); rows come back
    in the order of ``config.anns`` x ``config.seeds`` x ``config.percentiles`` whatever order the jobs
    finish in.
    """
    total = 1 + len(config.percentiles) * len(ds.x_test)
    pairs = [(kind, seed) for kind in config.anns for seed in config.seeds]

    def task(kind: str, seed: int) -> str:
        return f"conversion {name}: {kind}{_seed_suffix(config, seed, ' seed ')}"

    for kind, seed in pairs:  # every task exists before worker threads report on them
        progress(task(kind, seed), 0, total)

    def train_one(pair: tuple[str, int]) -> tuple[str | None, float, str]:
        kind, seed = pair
        path = str(out / f"ann_{name}_{kind}{_seed_suffix(config, seed, '_seed')}.onnx")
        args = (kind, ds, seed, config.ann_epochs, config.batch_size, config.lr, path)
        value, error = run_job(train_export_job, args, threads=config.threads, timeout=config.backend_timeout)
        progress(task(kind, seed), 1, total)
        return (value[0], value[1], "") if value is not None else (None, 0.0, error)

    trained = dict(zip(pairs, map_jobs(pairs, train_one, config.jobs)))
    files.extend(path for path, _s, _e in trained.values() if path is not None)

    def sweep_one(item: tuple[str, int, float]) -> ConversionRow:
        kind, seed, pct = item
        path, seconds, _error = trained[(kind, seed)]
        args = (path, ds, kind, pct, config.timesteps, config.calib_samples)
        row, error = run_job(
            sweep_job, args, threads=config.threads, timeout=config.backend_timeout,
            on_event=lambda event: progress(task(kind, seed), event[1], total),
        )
        if row is None:
            row = ConversionRow(name, kind, pct, "error", error, test_samples=len(ds.x_test))
        row.ann_train_seconds = seconds
        row.seed = seed
        return row

    # The Lava row converts at the sweep's percentile closest to the conversion default.
    lava_pct = min(config.percentiles, key=lambda p: abs(p - 99.9))

    def lava_one(item: tuple[str, int, float]) -> ConversionRow:
        kind, seed, _ = item
        args = (trained[(kind, seed)][0], ds, kind, lava_pct, config.lava_steps, config.lava_samples, config.calib_samples)
        # Not a daemon: Lava's runtime starts processes of its own, which a daemon process may not have.
        row, error = run_job(lava_job, args, threads=config.threads, timeout=config.backend_timeout, daemon=False)
        if row is None:
            row = ConversionRow(name, kind, lava_pct, "error", error, backend="lava")
        row.seed = seed
        return row

    todo = [(kind, seed, pct) for kind, seed in pairs if trained[(kind, seed)][0] is not None for pct in config.percentiles]
    swept = dict(zip(todo, map_jobs(todo, sweep_one, config.jobs)))
    lava_todo = [(kind, seed, -1.0) for kind, seed in pairs if trained[(kind, seed)][0] is not None] if config.lava_samples else []
    swept.update(zip(lava_todo, map_jobs(lava_todo, lava_one, config.jobs)))
    rows = []
    for kind, seed in pairs:
        path, _seconds, error = trained[(kind, seed)]
        if path is None:
            rows.append(ConversionRow(name, kind, 0.0, "error", error, seed=seed))
        else:
            rows.extend(swept[(kind, seed, pct)] for pct in config.percentiles)
            rows.extend([swept[(kind, seed, -1.0)]] if (kind, seed, -1.0) in swept else [])
        progress(task(kind, seed), None, total, completed=total)
    return rows


def _config_dict(config: BenchConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    msg = f"cannot write {type(value).__name__} to JSON"
    raise TypeError(msg)
