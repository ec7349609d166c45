"""Gemm and MatMul(+Add) → Affine."""

from __future__ import annotations

import nir
import numpy as np
import onnx
import pytest
import torch
from convert_oracle import check_onnx_to_nir
from onnx import TensorProto, helper, numpy_helper
from torch import nn


def _gemm_model(trans_b: int, alpha: float, beta: float, rng) -> onnx.ModelProto:
    w = rng.normal(size=(5, 4) if trans_b else (4, 5)).astype(np.float32)
    c = rng.normal(size=(5,)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], transB=trans_b, alpha=alpha, beta=beta, name="fc")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(c, "C")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("trans_b", "alpha", "beta"), [(1, 1.0, 1.0), (0, 0.5, 2.0)])
def test_gemm_attributes_exact(trans_b, alpha, beta, rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(_gemm_model(trans_b, alpha, beta, rng), x, steps=2, exact=True)
    assert sum(isinstance(n, nir.Affine) for n in result.graph.nodes.values()) == 1


class MatMulAdd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 3))
        self.b = nn.Parameter(torch.randn(3))

    def forward(self, x):
        return x @ self.w + self.b


def test_matmul_add_becomes_one_affine(rng):
    x = rng.normal(size=(4, 6)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(MatMulAdd(), x, steps=2, exact=True)
    affines = [n for n in result.graph.nodes.values() if isinstance(n, nir.Affine)]
    assert len(affines) == 1
    assert np.any(affines[0].bias != 0)


def test_mlp_with_relu_approximates(rng):
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    x = rng.uniform(-1, 1, size=(16, 10)).astype(np.float32)
    check_onnx_to_nir(model, x, steps=256, tol=0.06, percentile=100.0)
