"""BatchNormalization: folded into the preceding Conv/Gemm, or a per-channel affine map."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from convert_oracle import check_onnx_to_nir, export
from onnx import helper
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError


def _randomise_bn(model: nn.Module) -> nn.Module:
    # Fresh BN layers are the identity; random statistics make a wrong fold visible.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=gen))
            m.bias.data.copy_(torch.randn(n, generator=gen))
    return model.eval()


def test_bn_after_conv_is_folded(rng):
    model = _randomise_bn(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4)))
    x = rng.normal(size=(3, 2, 6, 6)).astype(np.float32)
    proto = export(model, x, keep_bn=True)
    assert any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    result, _, _ = check_onnx_to_nir(proto, x, steps=2, exact=True)
    assert result.folded_batchnorm == 1
    assert sum(isinstance(n, nir.Conv2d) for n in result.graph.nodes.values()) == 1


def test_bn_after_linear_is_folded(rng):
    model = _randomise_bn(nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)))
    x = rng.normal(size=(3, 5)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(export(model, x, keep_bn=True), x, steps=2, exact=True)
    assert result.folded_batchnorm == 1


def test_bn_without_linear_producer_becomes_channel_affine(rng):
    model = _randomise_bn(nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1)))
    x = rng.normal(size=(3, 3, 4, 4)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(export(model, x, keep_bn=True), x, steps=2, exact=True)
    assert result.folded_batchnorm == 0
    depthwise = [n for n in result.graph.nodes.values() if isinstance(n, nir.Conv2d) and n.groups == 3]
    assert len(depthwise) == 1
    assert any("per-channel affine" in note for note in result.notes)


def test_bn_in_training_mode_is_refused(rng):
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    proto = export(nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2)), x, keep_bn=True)
    bn = next(n for n in proto.graph.node if n.op_type == "BatchNormalization")
    for attr in bn.attribute:
        if attr.name == "training_mode":
            attr.CopyFrom(helper.make_attribute("training_mode", 1))
    bn.output.extend(["running_mean_out", "running_var_out"])
    with pytest.raises(ConversionError, match="training mode"):
        convert(proto, x)


@pytest.mark.parametrize("c_shape", [(), (1, 3)])
def test_bn_after_gemm_with_broadcast_bias_and_beta_is_folded(rng, c_shape):
    """Gemm's C may be a scalar or ``(1, N)``; the fold must apply ``beta`` to it like the handler."""
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper

    inits = {
        "W": rng.normal(size=(4, 3)),
        "C": rng.normal(size=c_shape),
        "g": rng.uniform(0.5, 2, 3),
        "b": rng.normal(size=3),
        "m": rng.normal(size=3),
        "v": rng.uniform(0.5, 2, 3),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "C"], ["h"], alpha=2.0, beta=0.5),
            helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"]),
        ],
        "gemm_bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(1, 4)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    result = convert(proto)
    assert result.folded_batchnorm == 1
    (affine,) = [n for n in result.graph.nodes.values() if isinstance(n, nir.Affine)]
    np.testing.assert_allclose(x @ affine.weight.T + affine.bias, want, rtol=1e-5, atol=1e-5)
