"""``snnx bench``'s Loihi 2 deployment column and :mod:`snnx.bench.loihi`'s measurements."""

from __future__ import annotations

import nir
import numpy as np
import pytest

import snnx
from snnx.api import prepare
from snnx.bench import loihi as bench_loihi
from snnx.bench.direct import DirectJob, DirectRow, deploy_on_loihi, run_isolated
from snnx.bench.models import SnnSpec, build_snn
from snnx.bench.report import direct_rows
from snnx.bench.result import BenchResult
from snnx.ir.reference import simulate
from snnx.plugins.loihi import compat as lava_compat

LAVA_REASON = lava_compat.lava_available()
needs_lava = pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON}")


def _if_chain() -> nir.NIRGraph:
    """IF neurons with dyadic weights and thresholds: Loihi fixed point is the contract bit for bit."""
    rng = np.random.default_rng(1)
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([10])}),
            "fc1": nir.Linear(weight=rng.integers(-16, 20, (20, 10)) / 16),
            "n1": nir.IF(r=np.full(20, 1e3), v_threshold=np.ones(20), v_reset=np.zeros(20)),
            "fc2": nir.Linear(weight=rng.integers(-16, 24, (4, 20)) / 16),
            "n2": nir.IF(r=np.full(4, 1e3), v_threshold=np.full(4, 2.0), v_reset=np.zeros(4)),
            "out": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[("in", "fc1"), ("fc1", "n1"), ("n1", "fc2"), ("fc2", "n2"), ("n2", "out")],
    )
    graph.metadata = {"snnx": {"version": 1, "dt": 1e-3}}
    return graph


@pytest.mark.lava
@needs_lava
def test_deploy_of_an_exact_network_agrees_everywhere() -> None:
    graph = _if_chain()
    x = (np.random.default_rng(3).random((12, 6, 10)) < 0.4).astype(np.float64)
    labels = np.array([0, 1, 2, 3, 0, 1])
    expected = simulate(prepare(graph), {"in": x})["out"]
    assert expected.sum() > 10
    result = bench_loihi.deploy(graph, x, labels)
    accuracy = float(np.mean(expected.sum(0).argmax(1) == labels))
    assert (result.samples, result.steps) == (6, 12)
    assert result.reference_accuracy == result.loihi_accuracy == accuracy
    assert result.spike_agreement == result.prediction_agreement == result.top_class_agreement == 1.0
    assert result.run_seconds > 0 and result.steps_per_second > result.steps_per_second_total > 0
    speed, out = bench_loihi.measure_speed(graph, x)
    np.testing.assert_array_equal(out, expected)
    assert (speed.backend, speed.samples, speed.steps) == ("lava", 6, 12)
    assert speed.run_seconds > 0 and speed.one_sample_seconds > 0 and speed.steps_per_second_total > 0


def _job(x: np.ndarray, y: np.ndarray, graph_path: str, deploy_samples: int) -> DirectJob:
    return DirectJob("lava-dl", graph_path, "digits", x, y, x, y, steps=4, epochs=1, batch_size=16, lr=5e-3, seed=0,
                     readout="spikes", stats_samples=8, deploy_samples=deploy_samples)


def test_deploy_column_says_why_when_lava_is_missing(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(bench_loihi, "lava_missing", lambda: "lava not installed (lava.magma.core; snnx install lava)")
    row = DirectRow("lava-dl", "digits", "ok", test_accuracy=0.5)
    x, y = np.zeros((4, 1, 8, 8)), np.zeros(4, dtype=int)
    deploy_on_loihi(row, object(), _job(x, y, str(tmp_path / "g.nir"), 4))  # stops before exporting the model
    assert (row.loihi_samples, row.loihi_accuracy) == (0, None)
    header, cells = direct_rows(BenchResult(config={}, environment={}, direct=[row]))
    assert cells[header.index("Loihi acc")] == "lava not installed (lava.magma.core; snnx install lava)"
    assert cells[header.index("test acc")] == "50.00%"


def test_no_deploy_column_without_a_deployment() -> None:
    row = DirectRow("snntorch", "digits", "ok", test_accuracy=0.5)
    header = direct_rows(BenchResult(config={}, environment={}, direct=[row]))[0]
    assert "Loihi acc" not in header


@pytest.mark.lava
@pytest.mark.slow
@needs_lava
def test_lava_dl_row_is_deployed_on_loihi_next_to_its_trained_accuracy(tmp_path) -> None:
    from snnx.bench.data import load_digits

    ds = load_digits().limit(64, 24)
    graph = build_snn(SnnSpec(channels=(4, 8), arch="strided", seed=0), ds.shape, ds.classes)
    snnx.save(graph, str(tmp_path / "snn.nir"))
    job = _job(ds.x_train, ds.y_train, str(tmp_path / "snn.nir"), 16)
    job.x_test, job.y_test = ds.x_test, ds.y_test
    # In its own spawned worker, as `snnx bench` runs it: Lava must be able to start its processes there.
    row = run_isolated(job, timeout=300)
    assert row.status == "ok", row.detail
    assert row.loihi_samples == 16, row.loihi_detail
    assert 0.0 <= row.loihi_accuracy <= 1.0 and 0.0 <= row.loihi_trained_accuracy <= 1.0
    assert row.loihi_agreement >= 0.75  # 8-bit weights; graded (analog) input, exact for digits' 1/16 steps
    assert row.loihi_steps_per_second > 0
    header, cells = direct_rows(BenchResult(config={}, environment={}, direct=[row]))
    assert cells[header.index("Loihi acc")] == f"{100 * row.loihi_accuracy:.2f}%"
    assert "same spikes (n=16)" in cells[header.index("Loihi vs trained")]


@needs_lava
def test_a_deployment_that_fails_is_a_reason_not_an_error_row(tmp_path) -> None:
    row = DirectRow("lava-dl", "digits", "ok", test_accuracy=0.5)
    x, y = np.zeros((4, 1, 8, 8)), np.zeros(4, dtype=int)
    deploy_on_loihi(row, object(), _job(x, y, str(tmp_path / "g.nir"), 4))  # not a lava-dl model: no export
    assert row.status == "ok" and row.loihi_samples == 0 and row.loihi_accuracy is None
    assert row.loihi_detail and "\n" not in row.loihi_detail
