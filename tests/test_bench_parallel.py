"""``snnx bench --jobs N``: jobs in parallel worker processes give the same results as one at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Fields that measure time or memory: the only ones allowed to differ between --jobs 1 and --jobs 2.
MEASURED = {
    "train_seconds_per_epoch", "epoch_seconds", "infer_ms_per_sample", "peak_memory_mb", "peak_cuda_memory_mb",
    "ann_train_seconds", "convert_seconds", "simulate_seconds", "loihi_steps_per_second",
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
        "--percentiles", "99.9,100", "--lava-samples", "0",  # the Lava row: tests/test_bench.py
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


# -- --seed 0,1: one job per (backend, seed) ----------------------------------------------------------
def _tiny(tmp_path, name, **overrides):
    """The smallest direct-training run: one backend, 1 epoch, T = 2, 64 training and 32 test images."""
    from snnx.bench.runner import BenchConfig, run_bench

    config = BenchConfig(
        datasets=("digits",), tracks=("direct",), epochs=1, steps=2, limit_train=64, limit_test=32,
        stats_samples=16, **overrides,
    )
    result = run_bench(config, tmp_path / name)
    return result, json.loads((tmp_path / name / "bench.json").read_text())


def _strip(row):
    return {k: v for k, v in row.items() if k not in MEASURED}


@pytest.mark.slow  # 33 s on 2 idle-ish cores, 70 s at load 6: five worker processes, each importing torch
def test_seeds_are_one_job_per_backend_and_seed(tmp_path):
    pytest.importorskip("torch")
    import snnx

    backends = [b for b in ("norse", "snntorch", "spikingjelly") if b in snnx.get_backends()][:1]
    if not backends:
        pytest.skip("no torch training backend")
    both = (*backends, "no-such-backend")
    result, data = _tiny(tmp_path, "seeds", backends=both, seed=(0, 1), jobs=1)
    assert [(r["backend"], r["seed"]) for r in data["direct"]] == [(b, s) for b in both for s in (0, 1)]
    assert [r["status"] for r in data["direct"]] == ["ok", "ok", "unavailable", "unavailable"]
    assert data["config"]["seed"] == [0, 1]
    # The second seed's row is the row of a run with that seed alone (its weights and data order). Seed 0
    # alone is not run again: 5 worker processes in all, each importing torch and the backend.
    _, alone = _tiny(tmp_path, "seed1", backends=backends, seed=1)
    assert "direct_summary" not in alone and alone["direct"][0]["seed"] == 1
    assert _strip(data["direct"][1]) == _strip(alone["direct"][0])
    assert data["direct"][0]["spikes_per_sample"] != data["direct"][1]["spikes_per_sample"]  # seeds differ
    # --jobs 2 runs the same jobs two at a time: identical apart from times and memory.
    _, parallel = _tiny(tmp_path, "jobs2", backends=both, seed=(0, 1), jobs=2)
    assert [_strip(r) for r in parallel["direct"]] == [_strip(r) for r in data["direct"]]
    timeless = lambda s: {k: v for k, v in s.items() if not k.startswith("train_seconds")}  # noqa: E731
    assert [timeless(s) for s in parallel["direct_summary"]] == [timeless(s) for s in data["direct_summary"]]
    # The summary: mean ± sample std over the seeds that finished.
    ok, missing = data["direct_summary"]
    accs = [r["test_accuracy"] for r in data["direct"][:2]]
    assert (ok["backend"], ok["seeds"], ok["n"], ok["failed"]) == (backends[0], [0, 1], 2, 0)
    assert ok["test_accuracy_mean"] == pytest.approx(sum(accs) / 2)
    assert ok["test_accuracy_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)
    assert (missing["n"], missing["failed"], missing["test_accuracy_mean"]) == (0, 2, None)
    assert (tmp_path / "seeds" / "snn_digits_strided_seed1.nir").exists()
    assert "mean ± std" in (tmp_path / "seeds" / "bench.md").read_text()


def test_summary_is_mean_and_sample_std_of_finished_seeds():
    from snnx.bench.direct import DirectRow
    from snnx.bench.report import direct_rows, direct_summary_rows
    from snnx.bench.result import BenchResult

    rows = [
        DirectRow("a", "d", "ok", test_accuracy=0.5, train_seconds_per_epoch=1.0, seed=0),
        DirectRow("a", "d", "ok", test_accuracy=0.7, train_seconds_per_epoch=3.0, seed=1),
        DirectRow("a", "d", "error", "boom", seed=2),
        DirectRow("b", "d", "ok", test_accuracy=0.9, train_seconds_per_epoch=2.0, seed=0),
    ]
    result = BenchResult(config={}, environment={}, direct=rows)
    a, b = result.to_dict()["direct_summary"]
    assert (a["seeds"], a["n"], a["failed"]) == ([0, 1, 2], 2, 1)
    assert a["test_accuracy_mean"] == pytest.approx(0.6) and a["test_accuracy_std"] == pytest.approx(0.2 / 2**0.5)
    assert a["train_seconds_per_epoch_mean"] == 2.0 and a["train_seconds_per_epoch_std"] == pytest.approx(2**0.5)
    assert (b["n"], b["test_accuracy_std"]) == (1, None)  # no spread from one seed
    table = direct_summary_rows(result)
    assert table[1][2:] == ["2/3", "60.00 ± 14.14%", "2.00 ± 1.41"] and table[2][2:] == ["1/1", "90.00%", "2.00"]
    assert direct_rows(result)[0][:4] == ["dataset", "backend", "seed", "status"]
    # One seed: no seed column, no summary (the output of a single-seed run is unchanged).
    single = BenchResult(config={}, environment={}, direct=rows[3:])
    assert "direct_summary" not in single.to_dict() and "seed" not in direct_rows(single)[0]
    assert len(direct_summary_rows(single)) == 1


@pytest.mark.parametrize("value", ["a,b", "", "0,,1", "-1", "0,0"])
def test_bad_seeds_exit_2_with_one_line(tmp_path, capsys, value):
    from snnx.cli import main

    code = main(["bench", "--seed", value, "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--seed" in err, err
    assert not (tmp_path / "out").exists()  # refused before any work


def _start_grandchild_then_hang(pid_file: str, progress=None) -> None:
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "120"])
    Path(pid_file).write_text(str(child.pid))
    time.sleep(120)


def test_a_timed_out_non_daemon_worker_takes_its_children_with_it(tmp_path):
    """Lava forks a process per process model: killing only the worker would orphan them."""
    import os
    import time

    from snnx.bench.parallel import run_isolated

    pid_file = tmp_path / "pid"
    # 20 s: under load (CI, benchmarks) the worker may need several seconds before its child writes the pid.
    result, error = run_isolated(_start_grandchild_then_hang, (str(pid_file),), timeout=20, daemon=False)
    assert result is None and "timed out" in error
    pid = int(pid_file.read_text())
    for _ in range(50):  # reaped by init once killed; give it a moment
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    raise AssertionError("the worker's child outlived the timed-out worker")
