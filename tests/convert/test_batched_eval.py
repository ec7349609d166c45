"""``snnx convert --evaluate --backend <torch> --batch-size N [--device D]``: streamed, checked, timed."""

from __future__ import annotations

import numpy as np
import pytest

import snnx
from snnx.cli import main
from snnx.convert import evaluate
from snnx.convert.batched import check_sample

torch = pytest.importorskip("torch")


@pytest.fixture
def small_xy(small):
    """The shared small model (conftest) with its test samples and labels."""
    tmp, path = small
    with np.load(tmp / "test.npz") as data:
        return tmp, path, data["x"], data["y"]


def test_streamed_torch_evaluation_matches_the_reference(small_xy):
    _tmp, model, x, y = small_xy
    result = snnx.convert(str(model), calib=x)
    ref = evaluate(result, model, (x, y), (4, 16))
    assert ref.check is None and ref.samples_per_second > 0
    for backend in ("snntorch", "norse", "spikingjelly"):
        for batch in (7, 40):  # a last partial batch, and everything in one
            got = evaluate(result, model, (x, y), (4, 16), backend=backend, batch_size=batch, device="cpu")
            assert got.check is not None and got.check.status == "agree", got.check
            assert got.check.spikes > 0 and got.check.mismatches == 0
            assert got.batch_size == batch and got.device == "cpu" and got.samples_per_second > 0
            assert got.snn_accuracy == ref.snn_accuracy and got.agreement == ref.agreement, (backend, batch)
            for layer, per_t in ref.spikes.items():
                assert got.spikes[layer] == pytest.approx(per_t, abs=1e-9), (backend, batch, layer)
            for t, st in ref.stats.items():  # operation counts from the first batch's traces
                assert got.stats[t].sops == pytest.approx(st.sops)


def test_cli_reports_throughput_and_the_check(small_xy, capsys):
    tmp, model, _x, _y = small_xy
    argv = ["convert", str(model), "-o", str(tmp / "o.nir"), "--calib", str(tmp / "calib.npz"),
            "--evaluate", str(tmp / "test.npz"), "--timesteps", "4,16"]
    assert main([*argv, "--backend", "snntorch", "--batch-size", "16", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "SNN on snntorch (cpu, batch 16): 40 samples in" in out and "samples/s" in out
    assert "sample check vs the reference (first 8 samples, T = 16): spikes equal" in out
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "SNN on reference (cpu, batch" in out and "sample check" not in out


def test_cli_device_errors(small_xy, capsys):
    tmp, model, _x, _y = small_xy
    argv = ["convert", str(model), "-o", str(tmp / "o.nir"), "--calib", str(tmp / "calib.npz")]
    assert main([*argv, "--evaluate", str(tmp / "test.npz"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend 'reference' runs on cpu only" in err[0]
    assert main([*argv, "--batch-size", "8"]) == 2
    assert "apply to --evaluate" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*argv, "--evaluate", str(tmp / "test.npz"), "--backend", "snntorch", "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no CUDA device is available here" in err[0]
    assert not (tmp / "o.nir").exists()  # refused before converting anything


def _ref_runner(graph):
    return lambda xs: snnx.simulate(graph, {"input": xs})


def test_check_agrees_only_when_spikes_were_compared(small_graph):
    x = (np.random.default_rng(0).random((30, 2, 3)) < 0.7).astype(float)
    ok = check_sample(small_graph, _ref_runner(small_graph), x, "input", "output", "same")
    assert ok.status == "agree" and ok.spikes > 0 and "spikes equal" in ok.line()
    # No input, no spikes: equal outputs prove nothing, and the line says so instead of "agree".
    silent = check_sample(small_graph, _ref_runner(small_graph), np.zeros_like(x), "input", "output", "same")
    assert silent.status == "nothing compared" and "no spikes" in silent.line()

    def with_nan(xs):
        out = snnx.simulate(small_graph, {"input": xs})
        out["output"] = out["output"].copy()
        out["output"][3, 0, 1] = np.nan
        return out

    bad = check_sample(small_graph, with_nan, x, "input", "output", "broken")
    assert bad.status == "nothing compared" and bad.detail == "NaN in broken output"


def test_check_reports_differing_spikes(small_graph):
    x = (np.random.default_rng(0).random((30, 2, 3)) < 0.7).astype(float)

    def flipped(xs):
        out = snnx.simulate(small_graph, {"input": xs})
        out["output"] = out["output"].copy()
        out["output"][5, 0, 0] = 1 - out["output"][5, 0, 0]
        return out

    result = check_sample(small_graph, flipped, x, "input", "output", "broken")
    assert result.status == "disagree" and result.mismatches == 1 and "DISAGREE" in result.line()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (torch.cuda.is_available() is False)")
def test_cuda_streaming_matches_cpu(small_xy):
    _tmp, model, x, y = small_xy
    result = snnx.convert(str(model), calib=x)
    cpu = evaluate(result, model, (x, y), (4, 16), backend="snntorch", batch_size=16)
    gpu = evaluate(result, model, (x, y), (4, 16), backend="snntorch", batch_size=16, device="cuda")
    assert gpu.check.status == "agree" and gpu.device == "cuda"
    assert gpu.snn_accuracy == cpu.snn_accuracy and gpu.spikes == pytest.approx(cpu.spikes)
