"""``snnx convert`` on the command line: success output, and one-line errors with exit code 2."""

from __future__ import annotations

import numpy as np
import pytest
from convert_oracle import export
from torch import nn

import snnx
from snnx.cli import main



def convert_argv(model, target, calib=None, *extra):
    """``snnx convert MODEL -o TARGET [--calib CALIB] EXTRA...`` as an argv list."""
    argv = ["convert", str(model), "-o", str(target)]
    if calib is not None:
        argv += ["--calib", str(calib)]
    return [*argv, *map(str, extra)]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_writes_a_loadable_nir_and_prints_a_summary(small, capsys):
    tmp, model = small
    target = tmp / "out.nir"
    code, out, err = run(convert_argv(model, target, tmp / "calib.npz"), capsys)
    assert code == 0, err
    assert "IF neurons" in out
    assert "MaxPool" in out
    graph = snnx.load(target)
    assert graph.metadata["snnx"]["dt"] == 1.0


def test_convert_evaluate_prints_accuracy_per_t_and_spikes(small, capsys):
    tmp, model = small
    argv = convert_argv(model, tmp / "o.nir", tmp / "calib.npz", "--evaluate", tmp / "test.npz")
    code, out, err = run([*argv, "--timesteps", "4,16"], capsys)
    assert code == 0, err
    assert "ANN accuracy (onnxruntime)" in out
    assert "| 4 |" in out
    assert "| 16 |" in out
    assert "spikes per sample by layer" in out


def _expect_error(argv, capsys, target, *fragments):
    code, _out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]
    assert not target.exists()


def test_not_onnx(tmp_path, capsys):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n" * 10)
    target = tmp_path / "o.nir"
    _expect_error(convert_argv(bad, target), capsys, target, "notes.onnx", "ONNX")


def test_truncated_onnx(small, capsys):
    tmp, model = small
    cut = tmp / "cut.onnx"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    target = tmp / "o.nir"
    _expect_error(convert_argv(cut, target, tmp / "calib.npz"), capsys, target, "cut.onnx")


def test_missing_file(tmp_path, capsys):
    target = tmp_path / "o.nir"
    _expect_error(convert_argv(tmp_path / "nope.onnx", target), capsys, target, f"no such file: '{tmp_path / 'nope.onnx'}'")


def test_unsupported_op(tmp_path, rng, capsys):
    x = rng.normal(size=(4, 3)).astype(np.float32)
    path = tmp_path / "sig.onnx"
    path.write_bytes(export(nn.Sequential(nn.Linear(3, 3), nn.Sigmoid()), x).SerializeToString())
    np.savez(tmp_path / "c.npz", x=x)
    target = tmp_path / "o.nir"
    _expect_error(
        convert_argv(path, target, tmp_path / "c.npz"),
        capsys,
        target,
        "'Sigmoid'",
        "/1/Sigmoid",
        "Options:",
    )


def test_dynamic_spatial_shape_needs_input_shape(tmp_path, rng, capsys):
    import io

    import onnx
    import torch

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    buf = io.BytesIO()
    torch.onnx.export(
        model.eval(),
        (torch.zeros(1, 1, 6, 6),),
        buf,
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}},
    )
    path = tmp_path / "dyn.onnx"
    path.write_bytes(buf.getvalue())
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[2].dim_param == "H"
    np.savez(tmp_path / "c.npz", x=rng.uniform(size=(5, 1, 6, 6)).astype(np.float32))
    target = tmp_path / "o.nir"
    argv = convert_argv(path, target, tmp_path / "c.npz")
    _expect_error(argv, capsys, target, "dynamic shape", "--input-shape")
    code, _out, err = run([*argv, "--input-shape", "1,1,6,6"], capsys)
    assert code == 0, err
    assert target.exists()


def test_calibration_with_wrong_shape(small, rng, capsys):
    tmp, model = small
    np.savez(tmp / "wrong.npz", x=rng.uniform(size=(5, 1, 5, 5)).astype(np.float32))
    target = tmp / "o.nir"
    _expect_error(
        convert_argv(model, target, tmp / "wrong.npz"),
        capsys,
        target,
        "(5, 1, 5, 5)",
        "(N, 1, 4, 4)",
    )


def test_calibration_without_x(small, capsys):
    tmp, model = small
    np.savez(tmp / "keys.npz", images=np.zeros((2, 1, 4, 4), np.float32))
    target = tmp / "o.nir"
    _expect_error(
        convert_argv(model, target, tmp / "keys.npz"),
        capsys,
        target,
        "'x'",
        "images",
    )


def test_evaluate_without_labels(small, capsys):
    tmp, model = small
    target = tmp / "o.nir"
    argv = convert_argv(model, target, tmp / "calib.npz", "--evaluate", tmp / "calib.npz")
    code, out, err = run(argv, capsys)
    assert code == 2
    assert "'y'" in err and len(err.strip().splitlines()) == 1, err
    assert out == ""  # refused before converting: no conversion summary was printed
    assert not target.exists()


def test_old_opset_is_refused(tmp_path, rng, capsys):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    path = tmp_path / "old.onnx"
    path.write_bytes(export(nn.Sequential(nn.Linear(3, 2)), x, opset=9).SerializeToString())
    target = tmp_path / "o.nir"
    _expect_error(convert_argv(path, target), capsys, target, "opset 9", "11")


def test_evaluate_reports_operations_per_window(small, capsys):
    tmp, model = small
    argv = convert_argv(model, tmp / "o.nir", tmp / "calib.npz", "--evaluate", tmp / "test.npz")
    code, out, err = run([*argv, "--timesteps", "2,8"], capsys)
    assert code == 0, err
    assert "operations per sample (snnx.metrics" in out
    rows = [line for line in out.splitlines() if line.startswith(("| 2 |", "| 8 |"))]
    # the accuracy, spikes per neuron (+/-), operations and MAC = 4 SOPs tables
    assert len(rows) == 8
    assert "the ANN needs 448 MACs, counted from metadata" in out  # the hand count of tests/convert/test_ann_ops.py


def test_written_file_simulates_like_the_converted_graph(small, rng):
    from snnx.convert import convert

    tmp, model = small
    x = np.load(tmp / "calib.npz")["x"]
    result = convert(model, x)
    snnx.save(result.graph, tmp / "round.nir")
    loaded = snnx.load(tmp / "round.nir")
    xs = np.broadcast_to(x[:5][None].astype(np.float64), (20, 5, 1, 4, 4))
    before = snnx.simulate(result.graph, xs)
    after = snnx.simulate(loaded, xs)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    ifs = [n for n in loaded.nodes.values() if type(n).__name__ == "IF"]
    assert ifs
    assert all(float(n.metadata["snnx"]["v_init"]) == 0.5 for n in ifs)


@pytest.mark.lava
def test_convert_target_loihi_runs_on_lava_fixed_point(tmp_path, rng, capsys):
    """``--target loihi``: IF reset to zero from zero state, a graph backend 'lava' accepts;
    ``--evaluate --backend lava`` reports its fixed_pt accuracy (without per-layer spike probes)."""
    from snnx.api import prepare
    from snnx.ir.semantics import reset_of, v_init_of
    from snnx.plugins import get_backend

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    x = rng.uniform(size=(20, 1, 4, 4)).astype(np.float32)
    path = tmp_path / "mlp.onnx"
    path.write_bytes(export(model, x).SerializeToString())
    np.savez(tmp_path / "calib.npz", x=x)
    np.savez(tmp_path / "test.npz", x=x[:4], y=rng.integers(0, 3, size=4))
    argv = convert_argv(path, tmp_path / "m.nir", tmp_path / "calib.npz", "--target", "loihi")
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "target loihi" in out
    graph = snnx.load(tmp_path / "m.nir")
    neurons = [n for n in graph.nodes.values() if type(n).__name__ == "IF"]
    assert neurons and all(reset_of(n) == "value" and not np.any(v_init_of(n)) for n in neurons)
    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed")
    assert lava.refusals(prepare(graph)) == []
    argv += ["--evaluate", tmp_path / "test.npz", "--timesteps", "8", "--backend", "lava"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "SNN on lava" in out and "| 8 |" in out
