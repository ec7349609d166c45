"""Flatten, flattening Reshape, Identity, Dropout."""

from __future__ import annotations

import nir
import numpy as np
import onnx
import pytest
from convert_oracle import check_onnx_to_nir, export
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError


class ViewFlatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


def test_flatten_exact(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(48, 4))
    x = rng.normal(size=(3, 2, 6, 6)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(model, x, steps=2, exact=True)
    (flat,) = [n for n in result.graph.nodes.values() if isinstance(n, nir.Flatten)]
    assert flat.start_dim == 0


def test_view_reshape_flattens_exactly(rng):
    x = rng.normal(size=(3, 2, 6, 6)).astype(np.float32)
    proto = export(ViewFlatten(), x)
    assert any(n.op_type == "Reshape" for n in proto.graph.node)
    check_onnx_to_nir(proto, x, steps=2, exact=True)


class Unflatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], 2, 8) * 1.0


def test_non_flattening_reshape_is_refused(rng):
    x = rng.normal(size=(2, 16)).astype(np.float32)
    with pytest.raises(ConversionError, match="only reshapes that flatten"):
        convert(export(nn.Sequential(nn.Linear(16, 16), Unflatten()), x), x)


def _gemm_identity_dropout(rng, training: bool | None) -> onnx.ModelProto:
    w1, w2 = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")]
    drop_inputs = ["b"]
    if training is not None:
        inits += [
            numpy_helper.from_array(np.array(0.5, np.float32), "ratio"),
            numpy_helper.from_array(np.array(training), "training"),
        ]
        drop_inputs += ["ratio", "training"]
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["a"], transB=1, name="fc1"),
        helper.make_node("Identity", ["a"], ["b"], name="id"),
        helper.make_node("Dropout", drop_inputs, ["c"], name="drop"),
        helper.make_node("Gemm", ["c", "W2"], ["y"], transB=1, name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_identity_and_dropout_vanish(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(_gemm_identity_dropout(rng, None), x, steps=2, exact=True)
    assert sum(isinstance(n, nir.Affine) for n in result.graph.nodes.values()) == 2


def test_dropout_in_training_mode_is_refused(rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(ConversionError, match="training mode"):
        convert(_gemm_identity_dropout(rng, True), x)


def test_zero_pad_becomes_padding_identity_conv(rng):
    model = nn.Sequential(nn.ZeroPad2d(2), nn.Conv2d(2, 3, 3), nn.Flatten())
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    proto = export(model, x)
    assert any(n.op_type == "Pad" for n in proto.graph.node)
    check_onnx_to_nir(proto, x, steps=2, exact=True)


def test_reflection_pad_is_refused(rng):
    x = rng.normal(size=(1, 2, 5, 5)).astype(np.float32)
    with pytest.raises(ConversionError, match="only zero padding"):
        convert(export(nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(2, 2, 3)), x), x)
