"""``snnx convert --signed`` graphs on the torch backends: checked against the reference, evaluated, CLI."""

from __future__ import annotations

import numpy as np
import pytest

import snnx
from snnx.cli import main
from snnx.convert import evaluate
from snnx.ir.reference import simulate
from snnx.ir.semantics import signed_of

torch = pytest.importorskip("torch")

BACKENDS = ("snntorch", "norse", "spikingjelly")


@pytest.fixture
def signed_small(small):
    """The shared small model converted with ``--signed`` and ``--steps 8``, with its samples."""
    tmp, path = small
    with np.load(tmp / "test.npz") as data:
        x, y = data["x"], data["y"]
    return tmp, path, snnx.convert(str(path), calib=x, steps=8, signed=True), x, y


def test_converted_signed_graph_agrees_on_every_torch_backend(signed_small):
    _tmp, _path, result, x, _y = signed_small
    xs = np.ascontiguousarray(np.broadcast_to(x[:8][None].astype(np.float64), (16, 8, *x.shape[1:])))
    inputs = {result.input_name: xs}
    record = simulate(result.graph, inputs, record=True)
    signed = [k for k, n in result.graph.nodes.items() if signed_of(n)]
    negative = sum(int((record[k] < 0).sum()) for k in signed)
    assert signed and negative > 0  # -1 spikes occur in the reference, so they are compared below
    for agreement in snnx.check(result.graph, list(BACKENDS), inputs):
        assert agreement.status == "agree", (agreement.backend, agreement.detail)
        assert set(signed) <= set(agreement.compared)  # internal signed layers, not only the readout
        # spikes_total counts both signs: every +1 and every -1 of the outputs was compared
        assert agreement.spike_mismatches == 0 and agreement.spikes_total > negative


def test_streamed_signed_evaluation_matches_the_reference(signed_small):
    _tmp, model, result, x, y = signed_small
    ref = evaluate(result, model, (x, y), (4, 8))
    assert any(v > 0 for per_t in ref.negative.values() for v in per_t.values())
    for backend in BACKENDS:
        got = evaluate(result, model, (x, y), (4, 8), backend=backend, batch_size=16)
        assert got.check is not None and got.check.status == "agree", got.check
        assert got.snn_accuracy == ref.snn_accuracy, backend
        for layer, per_t in ref.spikes.items():  # both signs, as the reference counts them
            assert got.spikes[layer] == pytest.approx(per_t, abs=1e-9), (backend, layer)
            assert got.negative[layer] == pytest.approx(ref.negative[layer], abs=1e-9), (backend, layer)


def test_cli_check_and_evaluate_a_signed_graph(signed_small, capsys):
    tmp, model, _result, _x, _y = signed_small
    target = tmp / "signed.nir"
    argv = ["convert", str(model), "-o", str(target), "--calib", str(tmp / "calib.npz"), "--signed", "--steps", "8",
            "--evaluate", str(tmp / "test.npz"), "--timesteps", "4,8", "--backend", "snntorch"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "sample check vs the reference (first 8 samples, T = 8): spikes equal" in out
    assert "spikes per neuron per sample (only signed neurons emit negative ones)" in out
    assert main(["check", str(target), "--backends", ",".join(BACKENDS)]) == 0
    out = capsys.readouterr().out
    assert out.count("agree") == len(BACKENDS) and "disagree" not in out
