"""BatchNormalization that could not be folded into a Conv/Gemm → per-channel affine map.

The rewrite pass (:func:`snnx.convert.rewrites.fold_batchnorm`) folds the usual Conv→BN pairs; a BN
after a pooling layer, an addition or the input stays, and becomes a depthwise 1×1 ``Conv2d`` (for
``(C, H, W)`` tensors) or a diagonal ``Affine`` (for feature vectors).
"""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext
from snnx.convert.ops import onnx_op


@onnx_op("BatchNormalization", since=11)
@onnx_op("BatchNormalization", since=14)
@onnx_op("BatchNormalization", since=15)
def batchnorm_to_channel_affine(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    attrs = ctx.attrs(node)
    if attrs.get("training_mode", 0):
        msg = "is in training mode (it would use batch statistics); export after model.eval()"
        raise ctx.fail(msg)
    x = ctx.signal(node.input[0])
    gamma, beta, mean, var = (
        np.asarray(ctx.require_constant(node, i, what), dtype=np.float64)
        for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var"))
    )
    s = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    shift = beta - s * mean
    channels = x.shape[0]
    if len(x.shape) == 3:
        weight = s.reshape(channels, 1, 1, 1)
        hw = (x.shape[1], x.shape[2])

        def make(bias_factor: float) -> nir.NIRNode:
            return nir.Conv2d(
                input_shape=hw,
                weight=weight.copy(),
                stride=1,
                padding=0,
                dilation=1,
                groups=channels,
                bias=shift * bias_factor,
            )
    elif len(x.shape) == 1:

        def make(bias_factor: float) -> nir.NIRNode:
            return nir.Affine(weight=np.diag(s), bias=shift * bias_factor)
    else:
        msg = f"input of per-sample shape {x.shape} is neither (C, H, W) nor (features,)"
        raise ctx.fail(msg)
    ctx.set_signal(node.output[0], ctx.linear(node.name or "batchnorm", x, make, x.shape))
    ctx.note("a BatchNormalization without a preceding Conv/Gemm became a per-channel affine map")
