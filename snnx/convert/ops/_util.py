"""Attribute and signal helpers shared by the op families (the Gemm weight layout is :mod:`snnx.convert.gemm`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext, Signal


def spatial_padding(
    node: onnx.NodeProto,
    ctx: ConversionContext,
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
) -> tuple[int, int]:
    """Symmetric (H, W) padding of a 2-D Conv/Pool node, resolving ``auto_pad``.

    NIR's Conv2d and pools pad symmetrically, so asymmetric padding is refused with the reason.
    """
    attrs = ctx.attrs(node)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return (0, 0)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
            out = math.ceil(size / s)
            total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
            pads.append(
                (total // 2, total - total // 2) if auto == "SAME_UPPER" else (total - total // 2, total // 2)
            )
        begin = [p[0] for p in pads]
        end = [p[1] for p in pads]
    else:
        raw = list(attrs.get("pads", [0, 0, 0, 0]))
        begin, end = raw[:2], raw[2:]
    if begin != end:
        msg = (
            f"asymmetric padding {list(begin)} before / {list(end)} after is not expressible with NIR's "
            "symmetric padding; pad explicitly in the model (e.g. symmetric padding) and re-export"
        )
        raise ctx.fail(msg)
    return (int(begin[0]), int(begin[1]))


def pair(values, default: int) -> tuple[int, int]:
    """An ``(H, W)`` pair from a 1- or 2-element attribute, ``(default, default)`` when absent."""
    if values is None:
        return (default, default)
    values = list(values)
    if len(values) == 1:
        return (int(values[0]), int(values[0]))
    return (int(values[0]), int(values[1]))


def flatten_signal(ctx: ConversionContext, hint: str, x: Signal) -> Signal:
    """``x`` flattened to ``(features,)``: one NIR ``Flatten`` per term (``x`` itself if already 1-D).

    Every term gets its own Flatten so the signal stays a sum of terms (exact, no junction node).
    """
    if len(x.shape) == 1:
        return x
    terms = []
    for name, coef in x.terms:
        flat = ctx.add_node(
            hint, nir.Flatten(input_type={"input": np.array(x.shape)}, start_dim=0, end_dim=-1)
        )
        ctx.connect(name, flat)
        terms.append((flat, coef))
    return Signal(tuple(terms), (math.prod(x.shape),), x.nonneg)


def channel_affine(
    shape: tuple[int, ...], scale: np.ndarray, shift: np.ndarray, padding: int | tuple[int, int] = 0
) -> Callable[[float], nir.NIRNode]:
    """``make(bias_factor)`` for :meth:`ConversionContext.linear`: ``y = scale · x + shift`` per channel.

    A depthwise 1×1 ``Conv2d`` (with optional zero ``padding``) for a ``(C, H, W)`` signal, a diagonal
    ``Affine`` for ``(features,)``; the caller has checked the rank.
    """
    channels = shape[0]
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (channels,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.float64), (channels,))
    if len(shape) == 3:
        hw = (shape[1], shape[2])

        def make(bias_factor: float) -> nir.NIRNode:
            return nir.Conv2d(
                input_shape=hw,
                weight=scale.reshape(channels, 1, 1, 1).copy(),
                stride=1,
                padding=padding,
                dilation=1,
                groups=channels,
                bias=shift * bias_factor,
            )

        return make

    def make_affine(bias_factor: float) -> nir.NIRNode:
        return nir.Affine(weight=np.diag(scale), bias=shift * bias_factor)

    return make_affine
