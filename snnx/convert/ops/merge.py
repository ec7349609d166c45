"""Add, Sub, Mul, Div and Concat.

Adding two signals concatenates their term lists: NIR sums every edge into a node, so a residual
connection costs no node and no approximation, and the two branch scales are folded into the
consumer's weights (or its IF ``r``). Concat embeds each input into its channel slot with a 1×1
``Conv2d`` (or an ``Affine`` for vectors) and sums them the same way.
"""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext, Signal
from snnx.convert.ops import onnx_op
from snnx.convert.ops._util import channel_affine
from snnx.ir.nodes import kind_of


def _per_sample_constant(ctx: ConversionContext, value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast a constant operand to one sample's shape, refusing ones that vary over the batch."""
    value = np.asarray(value, dtype=np.float64)
    if value.ndim > len(shape):
        if value.shape[0] != 1 or value.ndim > len(shape) + 1:
            msg = f"constant operand of shape {value.shape} varies over the batch"
            raise ctx.fail(msg)
        value = value[0]
    try:
        return np.broadcast_to(value, shape).copy()
    except ValueError as exc:
        msg = f"constant operand of shape {value.shape} does not broadcast to per-sample shape {shape}"
        raise ctx.fail(msg) from exc


def _add_constant(
    node: onnx.NodeProto, ctx: ConversionContext, source: str, x: Signal, const: np.ndarray
) -> Signal:
    full = _per_sample_constant(ctx, const, x.shape)
    if len(x.shape) == 3:
        per_channel = full[:, :1, :1].reshape(-1)
        if not np.allclose(full, per_channel[:, None, None]):
            msg = "adds a constant that varies over H and W; only per-channel biases are supported"
            raise ctx.fail(msg)
        bias = per_channel
    elif len(x.shape) == 1:
        bias = full
    else:
        msg = f"bias add on per-sample shape {x.shape} is not supported"
        raise ctx.fail(msg)
    if len(x.terms) == 1 and ctx.uses.get(source, 0) == 1:
        name, coef = x.terms[0]
        producer = ctx.nodes[name]
        fresh = not any(src == name for src, _dst in ctx.edges)
        if fresh and kind_of(producer).weighted and hasattr(producer, "bias"):
            # MatMul + Add (and Conv + Add) become one node: the constant is the node's bias.
            producer.bias = np.asarray(producer.bias, dtype=np.float64) + bias / coef
            return x
    return ctx.linear(node.name or "bias", x, channel_affine(x.shape, 1.0, bias), x.shape)


def _operands(node: onnx.NodeProto, ctx: ConversionContext):
    a, b = node.input[0], node.input[1]
    ca, cb = ctx.constant(a), ctx.constant(b)
    if ca is not None and cb is not None:
        msg = "both operands are constant (constant folding should have removed this node)"
        raise ctx.fail(msg)
    return a, b, ca, cb


def _same_shape(ctx: ConversionContext, x: Signal, y: Signal) -> None:
    if x.shape != y.shape:
        msg = f"operands have per-sample shapes {x.shape} and {y.shape}; broadcasting two tensors is not supported"
        raise ctx.fail(msg)


def _add_or_subtract(node: onnx.NodeProto, ctx: ConversionContext, sign: float) -> None:
    """``a + sign · b``: two signals just merge their terms; a constant becomes a bias."""
    a, b, ca, cb = _operands(node, ctx)
    if ca is None and cb is None:
        x, y = ctx.signal(a), ctx.signal(b)
        _same_shape(ctx, x, y)
        out = x.plus(y.scaled(sign))
    elif cb is not None:
        out = _add_constant(node, ctx, a, ctx.signal(a), sign * np.asarray(cb, dtype=np.float64))
    else:
        out = _add_constant(node, ctx, b, ctx.signal(b).scaled(sign), ca)
    ctx.set_signal(node.output[0], out)


@onnx_op("Add", since=11)
@onnx_op("Add", since=13)
@onnx_op("Add", since=14)
def add(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Add of two signals (merged terms) or of a constant (a bias)."""
    _add_or_subtract(node, ctx, 1.0)


@onnx_op("Sub", since=11)
@onnx_op("Sub", since=13)
@onnx_op("Sub", since=14)
def sub(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Sub of two signals (merged terms, the second negated) or of a constant (a bias)."""
    _add_or_subtract(node, ctx, -1.0)


def _multiply(node: onnx.NodeProto, ctx: ConversionContext, x: Signal, factor: np.ndarray) -> Signal:
    factor = np.asarray(factor, dtype=np.float64)
    if factor.size == 1:
        # A scalar only changes the coefficients: no node, folded into whatever consumes the signal.
        return x.scaled(float(factor.reshape(-1)[0]))
    full = _per_sample_constant(ctx, factor, x.shape)

    def make(_bias_factor: float) -> nir.NIRNode:
        return nir.Scale(scale=full.copy())

    return ctx.linear(node.name or "mul", x, make, x.shape, nonneg=x.nonneg and bool(np.all(full >= 0)))


@onnx_op("Mul", since=11)
@onnx_op("Mul", since=13)
@onnx_op("Mul", since=14)
def mul(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Mul by a constant: a scalar changes coefficients only, a tensor becomes a ``Scale``."""
    a, b, ca, cb = _operands(node, ctx)
    if ca is None and cb is None:
        msg = "multiplies two data-dependent tensors; a product of spike rates has no IF equivalent"
        raise ctx.fail(msg)
    x, const = (ctx.signal(a), cb) if cb is not None else (ctx.signal(b), ca)
    ctx.set_signal(node.output[0], _multiply(node, ctx, x, const))


@onnx_op("Div", since=11)
@onnx_op("Div", since=13)
@onnx_op("Div", since=14)
def div(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Div by a non-zero constant: multiplication by its reciprocal."""
    a, _b, _ca, cb = _operands(node, ctx)
    if cb is None:
        msg = "divides by a data-dependent tensor; only division by a constant is supported"
        raise ctx.fail(msg)
    if np.any(np.asarray(cb) == 0):
        msg = "divides by a constant that contains zeros"
        raise ctx.fail(msg)
    ctx.set_signal(
        node.output[0], _multiply(node, ctx, ctx.signal(a), 1.0 / np.asarray(cb, dtype=np.float64))
    )


@onnx_op("Concat", since=11)
@onnx_op("Concat", since=13)
def concat(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """Concat along channels/features: each input embedded into its slot by a 1×1 ``Conv2d``/``Affine``."""
    inputs = [ctx.signal(name) for name in node.input]
    rank = len(inputs[0].shape) + 1
    axis = int(ctx.attrs(node)["axis"])
    axis = axis + rank if axis < 0 else axis
    if axis != 1:
        msg = f"concatenates along axis {axis}; only the channel/feature axis 1 is supported"
        raise ctx.fail(msg)
    rest = {x.shape[1:] for x in inputs}
    if len(rest) != 1:
        msg = f"inputs disagree outside the concatenation axis: {[x.shape for x in inputs]}"
        raise ctx.fail(msg)
    total = sum(x.shape[0] for x in inputs)
    out_shape = (total, *inputs[0].shape[1:])
    terms: list[tuple[str, float]] = []
    offset = 0
    for i, x in enumerate(inputs):
        c = x.shape[0]
        embed = np.zeros((total, c))
        embed[offset : offset + c] = np.eye(c)
        offset += c
        if len(x.shape) == 3:
            hw = x.shape[1:]

            def make(_bias_factor: float, embed=embed, hw=hw) -> nir.NIRNode:
                return nir.Conv2d(
                    input_shape=hw,
                    weight=embed[:, :, None, None].copy(),
                    stride=1,
                    padding=0,
                    dilation=1,
                    groups=1,
                    bias=np.zeros(total),
                )
        elif len(x.shape) == 1:

            def make(_bias_factor: float, embed=embed) -> nir.NIRNode:
                return nir.Affine(weight=embed.copy(), bias=np.zeros(total))
        else:
            msg = f"input {i} has per-sample shape {x.shape}; only (C, H, W) or (features,) are supported"
            raise ctx.fail(msg)
        terms.extend(ctx.linear(f"{node.name or 'concat'}_in{i}", x, make, out_shape).terms)
    ctx.set_signal(node.output[0], Signal(tuple(terms), out_shape, all(x.nonneg for x in inputs)))
