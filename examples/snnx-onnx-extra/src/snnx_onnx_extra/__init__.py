"""snnx-onnx-extra: ONNX op handlers for ``snnx convert``, added from outside snnx.

``LeakyRelu(x) = relu(x) - alpha * relu(-x)`` is an identity, and each ``relu`` is what snnx's
converter already maps to a population of IF neurons (reset "subtract", rate-coded). So a LeakyRelu
becomes two IF populations, one fed ``x`` and one fed ``-x``, whose rates are combined with
coefficients ``+lambda`` and ``-alpha * lambda`` by the next layer's weights. The core refuses
LeakyRelu because a single IF population cannot fire negatively.

The one approximation beyond ReLU conversion: calibration records only the scale ``lambda`` of the
op's positive outputs, and the negative population uses the same ``lambda``; inputs below
``-lambda`` saturate (the output is clipped at ``-alpha * lambda``), just as positive ones clip at
``lambda``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnx import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import onnx

__version__ = "0.1.0"

#: ONNX's default ``alpha`` of LeakyRelu.
DEFAULT_ALPHA = 0.01


def leaky_relu_to_if(node: onnx.NodeProto, ctx: Any) -> None:
    """Translate ``LeakyRelu`` into a positive and a negative IF population (see the module docstring).

    :param node: the ONNX node.
    :param ctx: snnx's :class:`snnx.convert.context.ConversionContext`.
    """
    from snnx.convert.context import LayerInfo, Signal

    alpha = float(ctx.attrs(node).get("alpha", DEFAULT_ALPHA))
    if alpha < 0:
        msg = f"alpha = {alpha} is negative; only 0 <= alpha is supported (the identity needs relu(-x) >= 0)"
        raise ctx.fail(msg)
    x = ctx.signal(node.input[0])
    lam = ctx.activation_scale(node.output[0])
    hint = node.name or node.output[0]
    positive = ctx.spiking(hint, [(x, 1.0 / lam)], x.shape)
    if alpha == 0.0:  # it is a ReLU
        terms: tuple[tuple[str, float], ...] = ((positive, lam),)
        neurons = [positive]
    else:
        negative = ctx.spiking(f"{hint}_negative", [(x, -1.0 / lam)], x.shape)
        terms = ((positive, lam), (negative, -alpha * lam))
        neurons = [positive, negative]
        ctx.note(
            f"{ctx.describe(node)}: LeakyRelu as relu(x) - {alpha:g}*relu(-x), two IF populations; "
            f"inputs below {-lam:.4g} saturate (snnx-onnx-extra)"
        )
    ctx.layers.append(LayerInfo(hint, node.op_type, neurons, x.shape, lam))
    ctx.set_signal(node.output[0], Signal(terms, x.shape, nonneg=alpha == 0.0))


# The driver calibrates the outputs of handlers that carry this flag (the op's firing scale lambda).
leaky_relu_to_if.snnx_calibrate = True  # type: ignore[attr-defined]


@hookimpl
def snnx_register_onnx_ops(register: Any) -> None:
    """Register LeakyRelu for both opset versions of its schema (6, and 16 which added bfloat16)."""
    register("LeakyRelu", leaky_relu_to_if, since=6)
    register("LeakyRelu", leaky_relu_to_if, since=16)
