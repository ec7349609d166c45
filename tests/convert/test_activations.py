"""Relu / Clip(0, max) → IF populations; other activations are refused with node, op and options."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from convert_oracle import check_onnx_to_nir, export
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError, UnsupportedNodeError


def test_relu_becomes_if_with_subtract_reset_and_half_threshold_init(rng):
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = rng.normal(size=(32, 4)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(model, x, steps=256, tol=0.05, percentile=100.0)
    (neuron,) = [n for n in result.graph.nodes.values() if isinstance(n, nir.IF)]
    meta = neuron.metadata["snnx"]
    assert meta["reset"] == "subtract"
    assert float(meta["v_init"]) == pytest.approx(0.5 * float(np.max(neuron.v_threshold)))
    assert result.graph.metadata["snnx"]["dt"] == 1.0
    (readout,) = [n for n in result.graph.nodes.values() if isinstance(n, nir.I)]
    assert readout.metadata["snnx"]["v_init"] == 0.0


def test_relu6_scale_is_capped_at_six(rng):
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU6(), nn.Linear(6, 2))
    nn.init.constant_(model[0].bias, 5.0)  # pushes most activations into the clip
    x = rng.normal(size=(32, 3)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(model, x, steps=256, tol=0.05, percentile=100.0)
    assert result.layers[0].op_type == "Clip"
    assert result.layers[0].scale <= 6.0


def test_clip_with_nonzero_floor_is_refused(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    proto = export(nn.Sequential(nn.Linear(3, 3), nn.Hardtanh()), x)
    with pytest.raises(ConversionError, match=r"lower bound -1\.0 is not 0"):
        convert(proto, x)


@pytest.mark.parametrize(
    "act", [nn.Sigmoid(), nn.Tanh(), nn.SiLU(), nn.LeakyReLU()], ids=lambda a: type(a).__name__
)
def test_unsupported_activation_names_node_op_and_options(act, rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    proto = export(nn.Sequential(nn.Linear(3, 3), act), x)
    op = next(n for n in proto.graph.node if n.op_type not in ("Gemm", "Mul"))
    with pytest.raises(UnsupportedNodeError) as info:
        convert(proto, x)
    message = str(info.value)
    assert repr(op.name) in message
    assert f"op {op.op_type!r}" in message
    assert "Options:" in message
    assert "snnx_register_onnx_ops" in message


def test_missing_calibration_is_a_clear_error(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    with pytest.raises(ConversionError, match="--calib"):
        convert(export(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), x))


def test_unknown_non_activation_op_suggests_reexport(rng):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["y"], name="absolute")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedNodeError, match=r"'absolute' uses op 'Abs'.*re-export"):
        convert(model, rng.normal(size=(2, 3)).astype(np.float32))


def test_calibration_subset_is_uniform_over_ordered_batches(monkeypatch):
    """Past MAX_VALUES the kept activations must be a uniform subset of every batch, not favour the last."""
    from onnx import TensorProto, helper

    from snnx.convert import calibrate as calib_mod

    monkeypatch.setattr(calib_mod, "MAX_VALUES", 1000)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # Sorted data, one sample per batch: 75 % of the positive values are 1, the last 25 % are 2.
    x = np.concatenate([np.ones((6, 1000)), np.full((2, 1000), 2.0)]).astype(np.float32)
    scales, _ = calib_mod.calibrate(model, "x", 1, x, ["y"], percentile=70.0)
    assert scales["y"] == 1.0
