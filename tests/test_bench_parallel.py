"""``snnx bench --jobs N``: jobs in parallel worker processes give the same results as one at a time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Fields that measure time or memory: the only ones allowed to differ between --jobs 1 and --jobs 2.
MEASURED = {
    "train_seconds_per_epoch", "epoch_seconds", "infer_ms_per_sample", "peak_memory_mb", "peak_cuda_memory_mb",
    "ann_train_seconds", "convert_seconds", "simulate_seconds",
}


def _results(path):
    data = json.loads(path.read_text())
    strip = lambda row: {k: v for k, v in row.items() if k not in MEASURED}  # noqa: E731
    return [strip(r) for r in data["direct"]], [strip(r) for r in data["conversion"]], data["config"]


@pytest.mark.slow
def test_jobs_2_gives_the_same_table_as_jobs_1(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import snnx

    backends = [b for b in ("snntorch", "norse", "spikingjelly") if b in snnx.get_backends()][:2]
    if not backends:
        pytest.skip("no torch training backend")
    args = [
        "bench", "--quick", "--backends", ",".join([*backends, "no-such-backend"]), "--epochs", "1",
        "--limit-train", "192", "--limit-test", "96", "--anns", "mlp,cnn", "--timesteps", "2,8",
        "--percentiles", "99.9,100",
    ]
    tables = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        proc = subprocess.run(
            [sys.executable, "-m", "snnx.cli", *args, "--jobs", str(jobs), "-o", str(out)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        tables[jobs] = _results(out / "bench.json")
    direct1, conv1, config1 = tables[1]
    direct2, conv2, config2 = tables[2]
    assert config1["jobs"] == 1 and config2["jobs"] == 2
    # Same rows in the same order, bit-identical accuracies, losses, spike and operation counts.
    assert direct1 == direct2
    assert conv1 == conv2
    assert [r["status"] for r in direct1] == ["ok"] * len(backends) + ["unavailable"]
    assert len(conv1) == 4 and all(r["status"] == "ok" for r in conv1)
    assert all(r["losses"] and r["spikes_per_sample"] > 0 for r in direct1[: len(backends)])


def test_map_jobs_keeps_the_order_and_runs_concurrently():
    import threading
    import time

    from snnx.bench.parallel import map_jobs

    running, peak = [0], [0]
    lock = threading.Lock()

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return i * i

    assert map_jobs(range(6), work, jobs=3) == [i * i for i in range(6)]
    assert peak[0] == 3
    assert map_jobs(range(3), work, jobs=1) == [0, 1, 4]


def _boom(progress=None):
    raise ValueError("this job fails")


def _echo(x, progress=None):
    import os

    progress(("note", x))
    return x, os.environ.get("OMP_NUM_THREADS")


def test_a_failing_job_is_an_error_not_a_crash():
    from snnx.bench.parallel import run_isolated

    value, error = run_isolated(_boom, (), threads=1)
    assert value is None and error == "ValueError: this job fails"
    events = []
    value, error = run_isolated(_echo, (7,), threads=3, on_event=events.append)
    # The worker's native thread pools are sized by --threads (so N jobs do not oversubscribe the cores).
    assert (value, error, events) == ((7, "3"), "", [("note", 7)])
