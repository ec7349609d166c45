"""Flatten, flattening Reshape, Identity and Dropout: no spiking dynamics, at most a NIR ``Flatten``."""

from __future__ import annotations

import math

import numpy as np
import onnx

from snnx.convert.context import ConversionContext, Signal
from snnx.convert.ops import onnx_op
from snnx.convert.ops._util import channel_affine, flatten_signal


def _flatten(node: onnx.NodeProto, ctx: ConversionContext, x: Signal) -> None:
    ctx.set_signal(node.output[0], flatten_signal(ctx, node.name or "flatten", x))


@onnx_op("Flatten", since=11)
@onnx_op("Flatten", since=13)
def flatten_to_flatten(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Flatten with ``axis=1`` → one NIR ``Flatten`` per signal term."""
    x = ctx.signal(node.input[0])
    axis = int(ctx.attrs(node).get("axis", 1))
    rank = len(x.shape) + 1
    if axis < 0:
        axis += rank
    if axis != 1:
        msg = f"axis={axis} would mix the batch with features or keep spatial axes; only axis=1 is supported"
        raise ctx.fail(msg)
    _flatten(node, ctx, x)


@onnx_op("Reshape", since=11)
@onnx_op("Reshape", since=14)
def reshape_to_flatten(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """A Reshape to the same shape (nothing) or to ``(batch, features)`` (a Flatten); others refused."""
    x = ctx.signal(node.input[0])
    out = ctx.shape(node.output[0])
    if tuple(out) == tuple(x.shape):
        ctx.set_signal(node.output[0], x)
        return
    if (
        len(out) == 1
        and out[0] == math.prod(x.shape)
        and ctx.shapes[node.output[0]][0] == ctx.shapes[node.input[0]][0]
    ):
        _flatten(node, ctx, x)
        return
    msg = (
        f"reshapes per-sample {x.shape} to {out}; only reshapes that flatten to (batch, features) are "
        "supported (NIR has no general reshape)"
    )
    raise ctx.fail(msg)


@onnx_op("Identity", since=11)
@onnx_op("Identity", since=13)
@onnx_op("Identity", since=14)
@onnx_op("Identity", since=16)
def identity(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Identity → nothing: the output is the input's signal."""
    ctx.set_signal(node.output[0], ctx.signal(node.input[0]))


@onnx_op("Dropout", since=11)
@onnx_op("Dropout", since=12)
@onnx_op("Dropout", since=13)
def dropout_is_identity(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Dropout at inference → nothing; training mode is refused."""
    training = ctx.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if training is not None and bool(np.asarray(training)):
        msg = "is in training mode (training_mode=True); export the model after model.eval()"
        raise ctx.fail(msg)
    if len(node.output) > 1 and node.output[1]:
        ctx.note("a Dropout mask output is ignored (inference: Dropout is the identity)")
    ctx.set_signal(node.output[0], ctx.signal(node.input[0]))


@onnx_op("Pad", since=11)
@onnx_op("Pad", since=13)
@onnx_op("Pad", since=18)
def zero_pad_to_conv(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Symmetric zero padding of H and W → a depthwise 1×1 identity ``Conv2d`` with that padding."""
    x = ctx.signal(node.input[0])
    mode = ctx.attrs(node).get("mode", "constant")
    pads = [int(p) for p in np.asarray(ctx.require_constant(node, 1, "pads")).reshape(-1)]
    value = ctx.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 3 and node.input[3]:
        msg = "pads only some axes (an 'axes' input); pad H and W of an (N, C, H, W) tensor instead"
        raise ctx.fail(msg)
    if mode != "constant" or (value is not None and float(np.asarray(value).reshape(-1)[0]) != 0.0):
        msg = f"mode {mode!r} with value {value}: only zero padding is supported (convolutions pad with 0)"
        raise ctx.fail(msg)
    rank = len(x.shape) + 1
    begin, end = pads[:rank], pads[rank:]
    if rank != 4 or begin[:2] != [0, 0] or end[:2] != [0, 0] or begin[2:] != end[2:] or min(pads) < 0:
        msg = f"pads {pads}: only symmetric, non-negative padding of H and W of (N, C, H, W) is supported"
        raise ctx.fail(msg)
    make = channel_affine(x.shape, 1.0, 0.0, padding=(begin[2], begin[3]))
    ctx.set_signal(
        node.output[0], ctx.linear(node.name or "pad", x, make, ctx.shape(node.output[0]), nonneg=x.nonneg)
    )
