"""A final Softmax/LogSoftmax is dropped: it is monotonic, so the argmax of the readout is unchanged."""

from __future__ import annotations

import onnx

from snnx.convert.context import ConversionContext
from snnx.convert.ops import onnx_op


def _drop_final(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    if node.output[0] not in ctx.graph_outputs:
        msg = (
            "is not the last op of the model; only a final (Log)Softmax can be dropped (it leaves the "
            "argmax unchanged), an inner one has no rate-coded equivalent"
        )
        raise ctx.fail(msg)
    x = ctx.signal(node.input[0])
    axis = int(ctx.attrs(node).get("axis", -1 if ctx.opset >= 13 else 1))
    if len(x.shape) != 1 or axis not in (1, -1):
        msg = f"softmax over axis {axis} of per-sample shape {x.shape}; only class vectors are supported"
        raise ctx.fail(msg)
    ctx.note(
        f"{node.op_type} {node.name or node.output[0]!r} dropped: the readout gives logits, whose argmax "
        f"is the same; apply {node.op_type.lower()} to readout/T for probabilities"
    )
    ctx.set_signal(node.output[0], x)


@onnx_op("Softmax", since=11)
@onnx_op("Softmax", since=13)
def final_softmax(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """A final Softmax → nothing (the readout's argmax is unchanged)."""
    _drop_final(node, ctx)


@onnx_op("LogSoftmax", since=11)
@onnx_op("LogSoftmax", since=13)
def final_log_softmax(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """A final LogSoftmax → nothing (the readout's argmax is unchanged)."""
    _drop_final(node, ctx)
