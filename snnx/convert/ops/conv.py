"""Conv → NIR ``Conv2d`` (any groups, strides, symmetric pads, dilations)."""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext
from snnx.convert.ops import onnx_op
from snnx.convert.ops._util import pair, spatial_padding


@onnx_op("Conv", since=11)
def conv_to_conv2d(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Conv (2-D) → ``Conv2d`` with the ANN's weights, input and bias divided by the input scale."""
    x = ctx.signal(node.input[0])
    w = np.asarray(ctx.require_constant(node, 1, "weight"), dtype=np.float64)
    if w.ndim != 4:
        msg = f"only 2-D convolutions are supported (weight has shape {w.shape}); 1-D and 3-D are not"
        raise ctx.fail(msg)
    bias = (
        np.asarray(ctx.require_constant(node, 2, "bias"), dtype=np.float64)
        if len(node.input) > 2 and node.input[2]
        else np.zeros(w.shape[0])
    )
    attrs = ctx.attrs(node)
    strides = pair(attrs.get("strides"), 1)
    dilations = pair(attrs.get("dilations"), 1)
    groups = int(attrs.get("group", 1))
    hw = (x.shape[1], x.shape[2])
    padding = spatial_padding(node, ctx, hw, (w.shape[2], w.shape[3]), strides, dilations)
    out_shape = ctx.shape(node.output[0])

    def make(bias_factor: float) -> nir.Conv2d:
        return nir.Conv2d(
            input_shape=hw,
            weight=w.copy(),
            stride=strides,
            padding=padding,
            dilation=dilations,
            groups=groups,
            bias=bias * bias_factor,
        )

    ctx.set_signal(node.output[0], ctx.linear(node.name or "conv", x, make, out_shape))
