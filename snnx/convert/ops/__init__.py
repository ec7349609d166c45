"""Built-in ONNX op handlers, one module per op family.

A handler is ``handler(node: onnx.NodeProto, ctx: ConversionContext) -> None``: it reads its inputs
as :class:`~snnx.convert.context.Signal` objects (or constants) from ``ctx``, adds NIR nodes and edges,
and records the signal of each output. The :func:`onnx_op` decorator only *collects* handlers;
:mod:`snnx.convert.plugin` registers them through the ``snnx_register_onnx_ops`` hook, the same way a
third-party plugin does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Modules of this package that hold handlers; the plugin imports exactly these.
FAMILIES: tuple[str, ...] = ("conv", "linear", "norm", "activations", "pooling", "shape", "merge", "output")

Handler = Callable[..., Any]


@dataclass(frozen=True)
class OpSpec:
    """One collected handler: the registry key and the function."""

    op_type: str
    since: int
    handler: Handler
    domain: str = ""


COLLECTED: list[OpSpec] = []


def onnx_op(
    op_type: str, since: int, *, domain: str = "", calibrate: bool = False
) -> Callable[[Handler], Handler]:
    """Collect ``handler`` for ``(domain, op_type, since)``; stack it for several opset versions.

    :param op_type: the ONNX op type, e.g. ``"Relu"``.
    :param since: first opset version this handler understands.
    :param domain: the ONNX domain (``""`` is the default ``ai.onnx`` domain).
    :param calibrate: the op's outputs become spike trains whose scale comes from calibration data,
        so the driver records their activation percentile before translating.
    """

    def decorate(handler: Handler) -> Handler:
        if calibrate:
            handler.snnx_calibrate = True  # type: ignore[attr-defined]
        COLLECTED.append(OpSpec(op_type, since, handler, domain))
        return handler

    return decorate
