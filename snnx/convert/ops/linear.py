"""Gemm and MatMul → NIR ``Affine`` (a following constant Add folds into the bias)."""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext
from snnx.convert.ops import onnx_op
from snnx.convert.gemm import gemm_weight_bias


def _flat_input(node: onnx.NodeProto, ctx: ConversionContext):
    x = ctx.signal(node.input[0])
    if len(x.shape) != 1:
        msg = (
            f"takes a tensor of per-sample shape {x.shape}; only (batch, features) inputs are supported "
            "(flatten before the linear layer)"
        )
        raise ctx.fail(msg)
    return x


@onnx_op("Gemm", since=11)
def gemm_to_affine(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Gemm → ``Affine`` (``alpha``, ``beta`` and ``transB`` folded into the weights and bias)."""
    attrs = ctx.attrs(node)
    if attrs.get("transA", 0):
        msg = "transA=1 (the data input transposed) has no per-sample meaning; export without it"
        raise ctx.fail(msg)
    x = _flat_input(node, ctx)
    b = ctx.require_constant(node, 1, "weight B")
    c = ctx.require_constant(node, 2, "bias C") if len(node.input) > 2 and node.input[2] else None
    w, bias = gemm_weight_bias(attrs, b, c)
    if bias is None:
        msg = f"bias C of shape {np.shape(c)} varies over the batch; only per-feature biases are supported"
        raise ctx.fail(msg)

    def make(bias_factor: float) -> nir.Affine:
        return nir.Affine(weight=w.copy(), bias=bias * bias_factor)

    ctx.set_signal(node.output[0], ctx.linear(node.name or "gemm", x, make, (len(bias),)))


@onnx_op("MatMul", since=11)
def matmul_to_affine(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """MatMul by a constant matrix → bias-free ``Affine`` (a following constant Add becomes its bias)."""
    x = _flat_input(node, ctx)
    w = np.asarray(ctx.require_constant(node, 1, "weight"), dtype=np.float64)
    if w.ndim != 2:
        msg = f"weight of shape {w.shape} is not a matrix; only (features, out) weights are supported"
        raise ctx.fail(msg)
    weight = w.T.copy()

    def make(bias_factor: float) -> nir.Affine:
        return nir.Affine(weight=weight, bias=np.zeros(weight.shape[0]))

    ctx.set_signal(node.output[0], ctx.linear(node.name or "matmul", x, make, (weight.shape[0],)))
