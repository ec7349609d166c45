"""The ANN's operation count (snnx/convert/ann_ops.py) against hand counts from the ONNX shapes, its
trip through convert's metadata into `snnx stats`, and `snnx stats --labels` against `--evaluate`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import snnx
from snnx.cli import main
from snnx.convert.ann_ops import count_ann_ops


def _hand_model() -> onnx.ModelProto:
    """x (N,1,4,4) -> Conv(1->2, 3x3, pad 1) -> AveragePool(2x2, s2) -> Flatten -> Gemm(8->3)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(2, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(2, np.float32), "b"),
        numpy_helper.from_array(rng.normal(size=(3, 8)).astype(np.float32), "fw"),
        numpy_helper.from_array(np.zeros(3, np.float32), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "hand",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_ann_ops_by_hand():
    ops = count_ann_ops(_hand_model())
    # Conv, 3 taps per dim with pad 1 on 4 positions: the border positions keep 2 taps inside, the
    # inner ones 3 -> 2+3+3+2 = 10 per dim, 100 per channel pair; 2 out x 1 in channels -> 200 MACs
    # (thop would count 2*16*9 = 288 with the padding taps). Gemm 8 -> 3: 24. Pool: each of the
    # 2x4x4 = 32 elements is in one 2x2 window -> 32 adds.
    assert (ops.macs, ops.adds) == (224, 32)


def test_convert_stores_the_onnx_count_and_stats_uses_it(small, tmp_path, capsys):
    folder, model = small
    # Conv(1->4, 3x3, pad 1) on 4x4: 4 x 100 = 400 MACs; MaxPool 2x2 on 4x4x4: 64 (comparisons, as adds);
    # Linear 16 -> 3: 48 MACs.
    assert (count_ann_ops(model).macs, count_ann_ops(model).adds) == (448, 64)
    nir_path = tmp_path / "m.nir"
    assert main(["convert", str(model), "-o", str(nir_path), "--calib", str(folder / "calib.npz")]) == 0
    capsys.readouterr()
    graph = snnx.load(str(nir_path))
    assert graph.metadata["snnx"]["ann"]["macs"] == 448 and graph.metadata["snnx"]["ann"]["model"] == "model.onnx"
    x = np.load(folder / "test.npz")["x"][:5]
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["stats", str(nir_path), "--input", str(tmp_path / "x.npz"), "--timesteps", "4", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["windows"]
    assert row["ann_macs"] == 448 and row["stats"]["totals"]["ann_source"] == "metadata"
    # The max tree of the MaxPool is extra weighted layers in the SNN: its per-layer (topology) ANN ops
    # overstate the ANN, which is why the stored count is used.
    topology = snnx.metrics.stats(graph, np.broadcast_to(x[None], (2, *x.shape)))
    assert sum(layer.ann_ops for layer in topology.layers if layer.type != "SumPool2d") > 448
    code = main(["stats", str(nir_path), "--input", str(tmp_path / "x.npz"), "--timesteps", "4", "--json",
                 "--ann", str(model)])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)["windows"]
    assert row["stats"]["totals"]["ann_source"] == "onnx:model.onnx" and row["ann_macs"] == 448


def test_stats_accuracy_per_t_matches_evaluate(small, tmp_path, capsys):
    from snnx.convert import convert, evaluate

    folder, model = small
    data = np.load(folder / "test.npz")
    result = convert(str(model), str(folder / "calib.npz"))
    ev = evaluate(result, str(model), (data["x"], data["y"]), (1, 3, 8), metrics_samples=0)
    nir_path = tmp_path / "m.nir"
    snnx.save(result.graph, str(nir_path))
    np.savez(tmp_path / "x.npz", x=data["x"])
    np.save(tmp_path / "y.npy", data["y"])
    argv = ["stats", str(nir_path), "--input", str(tmp_path / "x.npz"), "--labels", str(tmp_path / "y.npy")]
    assert main([*argv, "--timesteps", "1,3,8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["windows"]
    assert {r["T"]: r["accuracy"] for r in rows} == pytest.approx(ev.snn_accuracy)
