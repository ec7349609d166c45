"""``snnx convert --target loihi --half-threshold-init``: reset-to-zero populations start from half their
threshold (MaxPool trees excepted), the integer graph keeps it integer, and ``lava`` runs it exactly."""

from __future__ import annotations

import numpy as np
import pytest
from convert_oracle import export
from torch import nn

import snnx
from snnx.api import prepare
from snnx.cli import main
from snnx.convert.targets import retarget
from snnx.convert.tuning import apply_tuning
from snnx.ir.reference import simulate
from snnx.ir.semantics import v_init_of


def test_retarget_starts_relu_populations_at_half_threshold_and_trees_at_zero(digits) -> None:
    xtr, *_ = digits
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 3))
    result = snnx.convert(export(model, xtr[:8]), xtr[:64])
    tree = {n for layer in result.layers if layer.op_type == "MaxPool" for n in layer.neurons}
    relu = {n for layer in result.layers if layer.op_type == "Relu" for n in layer.neurons}
    plain = retarget(result, "loihi")
    result.half_threshold_init = True
    half = retarget(result, "loihi")
    assert tree and relu
    for name in relu:
        node = half.graph.nodes[name]
        assert np.all(v_init_of(plain.graph.nodes[name]) == 0)
        np.testing.assert_allclose(np.broadcast_to(v_init_of(node), node.v_threshold.shape), node.v_threshold / 2)
    for name in tree:
        assert np.all(v_init_of(half.graph.nodes[name]) == 0)
        np.testing.assert_array_equal(half.graph.nodes[name].r, plain.graph.nodes[name].r)


@pytest.mark.lava
def test_integer_mlp_with_half_threshold_init_runs_exactly_on_lava(digits, digits_mlp_onnx) -> None:
    """``--integer 8 --target loihi --half-threshold-init``: integer ``v_init = ⌈θ/2⌉`` on every hidden
    layer, and ``lava`` (a pulse chain for the second layer) gives the reference's readout exactly."""
    from snnx.plugins import get_backend

    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed (snnx install lava)")
    xtr, _ytr, xte, _yte = digits
    result = snnx.convert(str(digits_mlp_onnx), xtr[:200])
    result.half_threshold_init = True
    apply_tuning(result, {"integer_bits": 8, "rate_gains": False}, target="loihi", calib=xtr[:200])
    graph = retarget(result, "loihi").graph
    relu = [n for layer in result.layers for n in layer.neurons]
    assert len(relu) == 2
    for name in relu:
        node = graph.nodes[name]
        v_init = np.broadcast_to(v_init_of(node), node.v_threshold.shape)
        np.testing.assert_array_equal(v_init, np.ceil(node.v_threshold / 2))
        assert np.all(v_init > 0)
    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    xs = np.broadcast_to(xte[:24].astype(np.float64)[None], (8, 24, *xte.shape[1:]))
    record = simulate(prepared, {inp: xs}, record=True)
    assert all(record[name].sum() > 0 for name in relu), "a hidden layer never spiked: nothing compared"
    v = lava.run(lava.lower(prepared, exact=True), {inp: xs})[out]
    np.testing.assert_array_equal(v, record[out])


def test_half_threshold_init_needs_target_loihi(small, capsys) -> None:
    tmp, model = small
    target = tmp / "o.nir"
    code = main(["convert", str(model), "-o", str(target), "--calib", str(tmp / "calib.npz"), "--half-threshold-init"])
    _out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--half-threshold-init" in err and "--target loihi" in err
    assert not target.exists()


def test_cli_writes_half_threshold_init(small, capsys) -> None:
    """The flag reaches the written graph: the ReLU populations start at θ/2, the max tree at 0."""
    tmp, model = small
    target = tmp / "o.nir"
    argv = ["convert", str(model), "-o", str(target), "--calib", str(tmp / "calib.npz"), "--target", "loihi"]
    assert main([*argv, "--half-threshold-init"]) == 0
    out, _err = capsys.readouterr()
    assert "--half-threshold-init" in out
    graph = snnx.load(target)
    starts = {
        name: np.broadcast_to(v_init_of(node), node.v_threshold.shape) / node.v_threshold
        for name, node in graph.nodes.items() if hasattr(node, "v_threshold") and name != "readout"
    }
    assert sorted(set(np.round(np.concatenate([s.ravel() for s in starts.values()]), 6))) == [0.0, 0.5]
