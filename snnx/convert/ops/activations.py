"""ReLU-like activations → IF populations (reset "subtract", threshold 1, ``v_init`` 0.5).

The IF rate (spikes per step, in [0, 1]) times the calibrated scale λ approximates the ANN value, so
the ReLU clamp at 0 is the neuron not firing and values above λ saturate at one spike per step.
Anything that is not piecewise linear with a zero floor has no rate-coded IF equivalent and is
refused by the driver (see ``specs/conversion.md``).
"""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext, LayerInfo, Signal
from snnx.convert.ops import onnx_op


def relu_like(node: onnx.NodeProto, ctx: ConversionContext, ceiling: float | None = None) -> None:
    """An IF population for a ReLU-like op whose calibrated scale λ is capped at ``ceiling``."""
    x = ctx.signal(node.input[0])
    lam = ctx.activation_scale(node.output[0])
    if ceiling is not None:
        # An IF saturates at one spike per step, so a scale at the ceiling reproduces the clip exactly.
        lam = min(lam, ceiling)
    channel = ctx.channel_scales.get(node.output[0])
    if channel is not None and len(channel) == x.shape[0]:
        # One λ_c per channel (--steps): threshold λ_c/λ, and a per-channel Scale after the IF that
        # gives each spike its channel's value (folded into the consumer's weights by emit).
        theta = np.minimum(channel, lam) / lam
        per_neuron = theta.reshape(-1, *([1] * (len(x.shape) - 1)))
        neurons = ctx.spiking(node.name or node.op_type, [(x, 1.0 / lam)], x.shape, threshold=per_neuron)
        scale = ctx.add_node(f"{neurons}_channels", nir.Scale(scale=np.broadcast_to(per_neuron, x.shape).copy()))
        ctx.connect(neurons, scale)
        ctx.channel_scale_nodes[scale] = theta
        terms = ((scale, lam),)
    else:
        neurons = ctx.spiking(node.name or node.op_type, [(x, 1.0 / lam)], x.shape)
        terms = ((neurons, lam),)
    ctx.layers.append(LayerInfo(node.name or node.output[0], node.op_type, [neurons], x.shape, lam))
    ctx.set_signal(node.output[0], Signal(terms, x.shape, nonneg=True))


@onnx_op("Relu", since=11, calibrate=True)
@onnx_op("Relu", since=14, calibrate=True)
def relu_to_if(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Relu → an IF population at the calibrated scale."""
    relu_like(node, ctx)


@onnx_op("Clip", since=11, calibrate=True)
@onnx_op("Clip", since=13, calibrate=True)
def clip_to_if(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Clip(0, max) → an IF population whose scale is at most ``max`` (saturation is the clip)."""
    bounds = []
    for what, index in (("min", 1), ("max", 2)):
        name = node.input[index] if len(node.input) > index else ""
        value = ctx.constant(name)  # None for an absent bound ("")
        if name and value is None:
            msg = f"its {what} bound is computed at run time; only constant bounds are supported"
            raise ctx.fail(msg)
        bounds.append(value)
    low, high = bounds
    if low is None or float(low) != 0.0:
        msg = (
            f"lower bound {None if low is None else float(low)} is not 0; only ReLU-like clips "
            "(Clip(0, max), e.g. ReLU6) map onto IF neurons, which cannot fire negatively"
        )
        raise ctx.fail(msg)
    relu_like(node, ctx, ceiling=None if high is None else float(high))
