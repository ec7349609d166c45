"""Issue 15: --steps, --signed, --finetune, --integer (small models; the full table is benchmarks/lowlatency_table.py)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from convert_oracle import export, train
from test_convert_cli import convert_argv, run
from test_models import ResidualCNN, mlp

import snnx
from snnx.convert import convert, evaluate
from snnx.convert.finetune import finetune, rate_model
from snnx.convert.integer import integerise
from snnx.convert.lowlatency import quantised_model
from snnx.ir.semantics import signed_of


@pytest.fixture(scope="module")
def digits_mlp(digits):
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = digits
    return export(train(mlp(), xtr, ytr, epochs=10), xte), digits


def test_steps_tunes_scales_and_signed_marks_every_if(digits_mlp):
    proto, (xtr, _ytr, xte, yte) = digits_mlp
    plain = convert(proto, xtr[:300])
    tuned = convert(proto, xtr[:300], steps=4, signed=True)
    assert tuned.steps == 4 and tuned.signed
    assert any("--steps 4" in n for n in tuned.notes)
    ifs = [n for n in tuned.graph.nodes.values() if isinstance(n, nir.IF)]
    assert ifs and all(signed_of(n) for n in ifs)
    assert tuned.graph.metadata["snnx"]["version"] == 2
    assert not any(signed_of(n) for n in plain.graph.nodes.values())
    # A 5-level quantiser wants a smaller λ than the 99.9th percentile.
    assert all(t.scale < p.scale for t, p in zip(tuned.layers, plain.layers, strict=True))
    before = evaluate(plain, proto, (xte, yte), (4, 64), metrics_samples=0)
    after = evaluate(tuned, proto, (xte, yte), (4, 64), metrics_samples=4)
    assert after.snn_accuracy[4] >= before.snn_accuracy[4]
    assert after.snn_accuracy[4] >= after.ann_accuracy - 0.03, after.table()
    assert after.snn_accuracy[64] >= after.ann_accuracy - 0.02, after.table()
    assert any(v[4] > 0 for v in after.negative.values())  # some spikes were taken back
    assert "MAC = 4 low-bit SOPs" in after.table()


def test_rate_model_is_the_signed_snn(digits_mlp):
    """The closed-form T-step model (what --finetune trains) predicts the signed SNN's classes."""
    import torch

    proto, (xtr, _ytr, xte, _yte) = digits_mlp
    result = convert(proto, xtr[:300], steps=8, signed=True)
    with torch.no_grad():
        rates = rate_model(result.graph, 8, set())(torch.as_tensor(xte[:100])).numpy()
        steps = rate_model(result.graph, 8, set(), exact=True)(torch.as_tensor(xte[:100])).numpy()
    xs = np.broadcast_to(xte[:100].astype(np.float64)[None], (8, *xte[:100].shape))
    v = snnx.simulate(result.graph, {result.input_name: xs})[result.output_names[0]][-1] / 8
    np.testing.assert_allclose(steps, v, rtol=1e-4, atol=1e-4)  # the exact forward is the SNN
    assert np.mean(rates.argmax(1) == v.argmax(1)) > 0.9


def test_exact_forward_is_the_reset_to_zero_snn(digits_mlp):
    """On a ``--target loihi`` graph (reset to zero, zero state) the fine-tuner's forward is that SNN."""
    import torch

    from snnx.convert.targets import retarget

    proto, (xtr, _ytr, xte, _yte) = digits_mlp
    result = retarget(convert(proto, xtr[:300], steps=8), "loihi")
    with torch.no_grad():
        steps = rate_model(result.graph, 8, set(), exact=True)(torch.as_tensor(xte[:100])).numpy()
    xs = np.broadcast_to(xte[:100].astype(np.float64)[None], (8, *xte[:100].shape))
    v = snnx.simulate(result.graph, {result.input_name: xs})[result.output_names[0]][-1] / 8
    np.testing.assert_allclose(steps, v, rtol=1e-4, atol=1e-4)
    subtract = rate_model(convert(proto, xtr[:300], steps=8).graph, 8, set(), exact=True)
    with torch.no_grad():
        assert not np.allclose(subtract(torch.as_tensor(xte[:100])).numpy(), v, atol=1e-3)


def test_quantised_model_inserts_one_quantiser_per_tensor(digits_mlp):
    proto, _ = digits_mlp
    relus = [n.output[0] for n in proto.graph.node if n.op_type == "Relu"]
    q = quantised_model(proto, relus, 4)
    assert sum(n.op_type == "Ceil" for n in q.graph.node) == len(relus)


def test_integer_graph_is_integer_and_close(digits_mlp):
    proto, (xtr, _ytr, xte, yte) = digits_mlp
    float_result = convert(proto, xtr[:300], steps=8, signed=True)
    result = convert(proto, xtr[:300], steps=8, signed=True)
    info = integerise(result.graph, 8)
    snnx.validate(result.graph)
    for node in result.graph.nodes.values():
        for attr in ("weight", "bias", "v_threshold", "r"):
            value = getattr(node, attr, None)
            if value is not None:
                assert np.array_equal(np.asarray(value), np.rint(np.asarray(value))), (type(node), attr)
        if isinstance(node, nir.IF):
            v0 = node.metadata["snnx"]["v_init"]
            assert np.array_equal(v0, np.rint(v0))
        if isinstance(node, (nir.Affine, nir.Conv2d)):
            assert np.abs(node.weight).max() <= 127
    assert info["max_threshold"] >= 1
    a = evaluate(float_result, proto, (xte, yte), (8,), metrics_samples=0).snn_accuracy[8]
    b = evaluate(result, proto, (xte, yte), (8,), metrics_samples=0).snn_accuracy[8]
    assert b >= a - 0.015


def test_cli_low_latency_options(tmp_path, digits_mlp, capsys):
    proto, (xtr, ytr, xte, yte) = digits_mlp
    model = tmp_path / "mlp.onnx"
    model.write_bytes(proto.SerializeToString())
    np.savez(tmp_path / "calib.npz", x=xtr[:200])
    np.savez(tmp_path / "train.npz", x=xtr[:300], y=ytr[:300])
    np.savez(tmp_path / "test.npz", x=xte[:100], y=yte[:100])
    argv = convert_argv(model, tmp_path / "o.nir", tmp_path / "calib.npz", "--steps", 4, "--signed")
    argv += ["--finetune", tmp_path / "train.npz", "--epochs", 1, "--integer", 8]
    argv += ["--evaluate", tmp_path / "test.npz", "--timesteps", "4,8"]
    code, out, err = run([str(a) for a in argv], capsys)
    assert code == 0, err
    assert "scales tuned for T = 4" in out
    assert "fine-tuned for T = 4" in out
    assert "integer graph: 8-bit weights" in out
    assert "| positive | negative |" in out
    assert snnx.load(tmp_path / "o.nir").metadata["snnx"]["version"] == 2


def test_signed_graph_runs_on_snntorch_and_is_refused_by_lava_dl(digits_mlp):
    # snntorch declares signed_spikes (tests/test_signed_torch.py has the spike-for-spike checks); the
    # Lava backends cannot emit -1 and must refuse with the reason, naming the nodes.
    torch = pytest.importorskip("torch")
    from snnx.ir.prepare import prepare
    from snnx.plugins import get_backend

    proto, (xtr, *_rest) = digits_mlp
    result = convert(proto, xtr[:100], signed=True)
    xs = np.broadcast_to(xtr[:4][None].astype(np.float64), (8, 4, *xtr.shape[1:]))
    want = snnx.simulate(result.graph, {result.input_name: xs})[result.output_names[0]]
    model = snnx.lower(result.graph, "snntorch", dtype="float64")
    with torch.no_grad():
        got = model(torch.as_tensor(np.ascontiguousarray(xs))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    reasons = get_backend("lava-dl").refusals(prepare(result.graph))
    assert any("signed spikes" in r and "not supported" in r for r in reasons), reasons


@pytest.mark.slow
def test_finetune_closes_the_gap_on_the_residual_cnn_at_t4(digits):
    xtr, ytr, xte, yte = digits
    proto = export(train(ResidualCNN(), xtr, ytr, epochs=15), xte, keep_bn=True)
    result = convert(proto, xtr[:500], steps=4, signed=True)
    info = finetune(result, (xtr, ytr), 4, epochs=5, teacher=proto)
    assert info["seconds"] < 300
    report = evaluate(result, proto, (xte, yte), (4, 8, 64), metrics_samples=0)
    assert report.snn_accuracy[4] >= report.ann_accuracy - 0.02, report.table()
    assert report.snn_accuracy[8] >= report.ann_accuracy - 0.01, report.table()


def test_per_channel_scales_fold_exactly_into_grouped_convs_and_linear(rng, monkeypatch):
    from torch import nn

    import snnx.convert.emit as emit

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(),
        nn.Conv2d(4, 8, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 16, 3),
    )
    x = rng.uniform(size=(64, 1, 4, 4)).astype(np.float32)
    proto = export(model, x, opset=13)
    folded = convert(proto, x, steps=4, per_channel=True)
    assert any("per channel" in n for n in folded.notes)
    assert not any(isinstance(n, nir.Scale) for n in folded.graph.nodes.values())
    monkeypatch.setattr(emit, "fold_channel_scales", lambda ctx: 0)
    kept = convert(proto, x, steps=4, per_channel=True)
    assert any(isinstance(n, nir.Scale) for n in kept.graph.nodes.values())
    xs = np.broadcast_to(x[:16].astype(np.float64)[None], (16, *x[:16].shape))
    a = snnx.simulate(folded.graph, {folded.input_name: xs})[folded.output_names[0]]
    b = snnx.simulate(kept.graph, {kept.input_name: xs})[kept.output_names[0]]
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_integer_refuses_per_channel_thresholds(digits_mlp):
    from snnx.errors import ConversionError

    proto, (xtr, *_rest) = digits_mlp
    result = convert(proto, xtr[:200], steps=4, per_channel=True)
    if not any(np.ndim(n.v_threshold) and np.ptp(n.v_threshold) > 0 for n in result.graph.nodes.values() if isinstance(n, nir.IF)):
        pytest.skip("no layer chose per-channel scales")
    with pytest.raises(ConversionError, match="per-channel"):
        integerise(result.graph, 8)


def test_apply_tuning_passes_the_seed_to_the_generic_finetuner(digits_mlp):
    """``tuning["seed"]`` seeds ``--finetune``'s shuffling: two seeds train different weights, one seed the same."""
    from snnx.convert.tuning import apply_tuning

    proto, (xtr, ytr, _xte, _yte) = digits_mlp
    weights = []
    for seed in (0, 0, 1):
        result = convert(proto, xtr[:100], steps=8)
        apply_tuning(result, {"steps": 8, "finetune_path": (xtr[:256], ytr[:256]), "epochs": 1, "seed": seed}, proto)
        weights.append(np.concatenate([np.ravel(n.weight) for n in result.graph.nodes.values() if hasattr(n, "weight")]))
    np.testing.assert_array_equal(weights[0], weights[1])
    assert not np.array_equal(weights[0], weights[2])
