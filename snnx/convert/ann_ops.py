"""Operations of one forward pass of an ONNX ANN, per sample, counted from its shapes.

The SNN's operations are counted per input element through the exact fan-out (``specs/metrics.md``
§2), so the ANN is counted the same way for a like-for-like ratio: ``Conv`` does one MAC per (output
element, kernel tap that lands inside the input), padding taps excluded; ``Gemm``/``MatMul`` one per
(output element, reduced element); pools one addition per tap inside the input. Elementwise ops
(BatchNormalization, activations, ``Add``) are not counted, as in the SNN (a fan-in sum is free there).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from snnx.convert.loader import load_model, parse_shape, pin_input, resolve_input, tensor_shapes
from snnx.errors import ConversionError
from snnx.metrics.ann import AnnOps
from snnx.metrics.geometry import window_counts

POOL_OPS = frozenset({"AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool"})


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads(attrs: dict, in_spatial, out_spatial, kernel, strides, dilations) -> list[int]:
    """Padding before each spatial dim (explicit ``pads`` or ``auto_pad``)."""
    nd = len(kernel)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        before = []
        for n, o, k, s, d in zip(in_spatial, out_spatial, kernel, strides, dilations):
            total = max(0, (o - 1) * s + (k - 1) * d + 1 - n)
            before.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        return before
    pads = list(attrs.get("pads", [0] * (2 * nd)))
    return pads[:nd]


def _valid_taps(in_spatial, out_spatial, kernel, strides, dilations, pads) -> int:
    """(output position, kernel tap) pairs whose tap lands inside the input, over all spatial dims."""
    total = 1
    for n, o, k, s, d, p in zip(in_spatial, out_spatial, kernel, strides, dilations, pads):
        total *= int(window_counts(n, k, s, d, p, o).sum())
    return total


def _shape(shapes: dict, inits: dict, name: str, node: onnx.NodeProto) -> tuple[int, ...]:
    if name in inits:
        return tuple(inits[name].shape)
    if name in shapes:
        return shapes[name]
    msg = f"ONNX node {node.name or node.op_type!r} ({node.op_type}): the shape of {name!r} is unknown; pass --input-shape"
    raise ConversionError(msg)


def count_ann_ops(
    model: str | os.PathLike | onnx.ModelProto, input_shape: tuple[int, ...] | str | None = None
) -> AnnOps:
    """MACs and pool additions of one forward pass of ``model`` for one sample.

    :param model: an ``.onnx`` path or a loaded model.
    :param input_shape: concrete input shape for models with dynamic spatial axes (as ``snnx convert``).
    :raises ConversionError: the model cannot be loaded or a counted node's shapes are unknown.
    """
    proto = load_model(model)
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    pinned = pin_input(proto, resolve_input(proto, shape, batch=1))
    shapes = tensor_shapes(pinned)
    inits = {t.name: numpy_helper.to_array(t) for t in pinned.graph.initializer}
    macs = adds = 0
    for node in pinned.graph.node:
        op = node.op_type
        if op not in ("Conv", "Gemm", "MatMul") and op not in POOL_OPS:
            continue
        x = _shape(shapes, inits, node.input[0], node)
        y = _shape(shapes, inits, node.output[0], node)
        attrs = _attrs(node)
        if op == "Conv":
            w = _shape(shapes, inits, node.input[1], node)
            kernel, nd = w[2:], len(w) - 2
            strides = attrs.get("strides", [1] * nd)
            dilations = attrs.get("dilations", [1] * nd)
            pads = _pads(attrs, x[2:], y[2:], kernel, strides, dilations)
            # each output channel reads C_in/groups = w.shape[1] channels
            macs += y[1] * w[1] * _valid_taps(x[2:], y[2:], kernel, strides, dilations, pads)
        elif op == "Gemm":
            reduced = x[0] if attrs.get("transA", 0) else x[-1]
            macs += int(np.prod(y)) * reduced
        elif op == "MatMul":
            macs += int(np.prod(y)) * x[-1]
        elif op.startswith("Global"):
            adds += int(np.prod(x))
        else:
            kernel = tuple(attrs["kernel_shape"])
            nd = len(kernel)
            strides = attrs.get("strides", [1] * nd)
            dilations = attrs.get("dilations", [1] * nd)
            pads = _pads(attrs, x[2:], y[2:], kernel, strides, dilations)
            adds += y[1] * _valid_taps(x[2:], y[2:], kernel, strides, dilations, pads)
    source = f"onnx:{Path(model).name}" if not isinstance(model, onnx.ModelProto) else "onnx"
    return AnnOps(macs=float(macs), adds=float(adds), source=source)


__all__ = ["count_ann_ops"]
