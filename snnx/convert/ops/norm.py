"""BatchNormalization that could not be folded into a Conv/Gemm → per-channel affine map.

The rewrite pass (:func:`snnx.convert.rewrites.fold_batchnorm`) folds the usual Conv→BN pairs; a BN
after a pooling layer, an addition or the input stays, and becomes a depthwise 1×1 ``Conv2d`` (for
``(C, H, W)`` tensors) or a diagonal ``Affine`` (for feature vectors).
"""

from __future__ import annotations

import numpy as np
import onnx

from snnx.convert.context import ConversionContext
from snnx.convert.ops import onnx_op
from snnx.convert.ops._util import channel_affine


@onnx_op("BatchNormalization", since=11)
@onnx_op("BatchNormalization", since=14)
@onnx_op("BatchNormalization", since=15)
def batchnorm_to_channel_affine(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Unfolded BatchNormalization → ``y = s·x + (β − s·μ)`` per channel, ``s = γ/√(σ²+ε)``."""
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
    if len(x.shape) not in (1, 3):
        msg = f"input of per-sample shape {x.shape} is neither (C, H, W) nor (features,)"
        raise ctx.fail(msg)
    make = channel_affine(x.shape, s, shift)
    ctx.set_signal(node.output[0], ctx.linear(node.name or "batchnorm", x, make, x.shape))
    ctx.note("a BatchNormalization without a preceding Conv/Gemm became a per-channel affine map")
