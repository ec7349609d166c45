"""Run both tracks of ``snnx bench`` and write the JSON, the table and the plots.

:func:`run_bench` is the Python entry point the command calls. It reports progress through a callback
(``on_progress(task, advance, total)``) so the command can drive a rich progress bar.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from snnx.bench import data as data_mod
from snnx.bench.conversion import ConversionRow, export_onnx, sweep, train_ann
from snnx.bench.direct import TRAINING_BACKENDS, DirectJob, availability, run_isolated
from snnx.bench.models import ANN_KINDS, SnnSpec, build_ann, build_snn
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
    seed: int = 0
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
    stats_samples: int = 256
    # One thread per worker: with two, torch's OpenMP barriers spin, and any other job on a 2-core
    # machine made epochs 15-20x slower in our runs; one thread costs ~20 % on an idle machine.
    threads: int = 1
    backend_timeout: float | None = 1800.0

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
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


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


def run_bench(config: BenchConfig, out_dir: str | os.PathLike, on_progress: Any = None) -> BenchResult:
    """Run the configured tracks on every data set; writes ``bench.json`` and plots to ``out_dir``."""
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
            spec = SnnSpec(channels=config.channels, arch=config.arch, seed=config.seed)
            graph = build_snn(spec, ds.shape, ds.classes)
            graph_path = out / f"snn_{name}_{spec.arch}.nir"
            snnx.save(graph, str(graph_path))
            result.files.append(str(graph_path))
            # Every backend is checked before any worker starts: importing a framework (lava) may set
            # the global multiprocessing start method, which fails once a process has been spawned.
            refused = {backend: availability(backend, graph) for backend in config.backends}
            for backend in config.backends:
                task = f"direct {name}: {backend}"
                progress(task, 0, config.epochs)
                row = refused[backend]
                if row is None:
                    job = DirectJob(
                        backend, str(graph_path), name, ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                        steps=config.steps, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        seed=config.seed, readout=spec.readout, stats_samples=config.stats_samples,
                        threads=config.threads,
                    )

                    def on_event(event: tuple, task: str = task) -> None:
                        _kind, _backend, epoch, batch, batches = event
                        progress(task, None, config.epochs, completed=epoch + batch / batches)

                    row = run_isolated(job, on_event, timeout=config.backend_timeout)
                row.dataset = name
                progress(task, None, config.epochs, completed=config.epochs)
                result.direct.append(row)
        if "conversion" in config.tracks:
            import torch

            torch.set_num_threads(config.threads)
            for kind in config.anns:
                task = f"conversion {name}: {kind}"
                total = 1 + len(config.percentiles) * len(ds.x_test)
                progress(task, 0, total)
                try:
                    model = build_ann(kind, ds.shape, ds.classes, config.seed)
                except SnnxError as exc:
                    result.conversion.append(ConversionRow(name, kind, 0.0, "error", str(exc)))
                    continue
                seconds = train_ann(model, ds, config.ann_epochs, config.batch_size, config.lr, config.seed)
                onnx_path = export_onnx(model, ds.shape, out / f"ann_{name}_{kind}.onnx")
                result.files.append(str(onnx_path))
                progress(task, 1, total)
                rows = sweep(
                    onnx_path, ds, kind, config.percentiles, config.timesteps, config.calib_samples,
                    on_chunk=lambda n, task=task: progress(task, n, total),
                )
                for row in rows:
                    row.ann_train_seconds = seconds
                result.conversion.extend(rows)
                progress(task, None, total, completed=total)
    result.seconds = time.perf_counter() - start
    result.environment["load_average_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    from snnx.bench.report import write_plots

    result.files.extend(write_plots(result, out))
    json_path = out / "bench.json"
    result.files.append(str(json_path))
    json_path.write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
    return result


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
