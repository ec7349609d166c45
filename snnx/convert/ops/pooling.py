"""Pooling. Average pools are linear (NIR ``AvgPool2d``/``SumPool2d``); MaxPool is built from IF neurons.

MaxPool uses ``max(a, b) = b + relu(a − b)``. Window elements are picked out by depthwise one-hot
``Conv2d`` nodes, each pairwise ``relu(a − b)`` is an IF population fed by a ±1 difference, and a
balanced tree of ⌈log2(k·k)⌉ levels reduces the window. On rates an IF computes the ReLU of its
*accumulated* input, so the output spike count tracks ``max`` of the input counts up to ±1 spike per
level (see ``specs/conversion.md``). No average-pool substitute is involved.
"""

from __future__ import annotations

import nir
import numpy as np
import onnx

from snnx.convert.context import ConversionContext, LayerInfo, Signal
from snnx.convert.ops import onnx_op
from snnx.convert.ops._util import flatten_signal, pair, spatial_padding


def _pool_geometry(node: onnx.NodeProto, ctx: ConversionContext, x: Signal):
    if len(x.shape) != 3:
        msg = f"only 2-D pooling of (C, H, W) tensors is supported, got per-sample shape {x.shape}"
        raise ctx.fail(msg)
    attrs = ctx.attrs(node)
    kernel = pair(attrs["kernel_shape"], 1)
    strides = pair(attrs.get("strides"), 1)
    dilations = pair(attrs.get("dilations"), 1)
    if dilations != (1, 1):
        msg = f"dilations {list(dilations)} are not supported by NIR pooling"
        raise ctx.fail(msg)
    hw = (x.shape[1], x.shape[2])
    padding = spatial_padding(node, ctx, hw, kernel, strides, dilations)
    out_shape = ctx.shape(node.output[0])
    floor_hw = tuple(
        (n + 2 * p - k) // s + 1 for n, p, k, s in zip(hw, padding, kernel, strides, strict=True)
    )
    if tuple(out_shape[1:]) != floor_hw:
        msg = (
            f"ceil_mode gives output {out_shape[1:]} where NIR pooling (floor) gives {floor_hw}; "
            "export with ceil_mode=False"
        )
        raise ctx.fail(msg)
    return kernel, strides, padding, out_shape


@onnx_op("AveragePool", since=11)
@onnx_op("AveragePool", since=19)
def average_pool(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """AveragePool → ``AvgPool2d``, or ``SumPool2d`` + per-position ``Scale`` if padding is not counted."""
    x = ctx.signal(node.input[0])
    kernel, strides, padding, out_shape = _pool_geometry(node, ctx, x)
    include_pad = bool(ctx.attrs(node).get("count_include_pad", 0))
    hint = node.name or "avgpool"
    if include_pad or padding == (0, 0):

        def make(_bias_factor: float) -> nir.NIRNode:
            return nir.AvgPool2d(
                kernel_size=np.array(kernel), stride=np.array(strides), padding=np.array(padding)
            )

        ctx.set_signal(node.output[0], ctx.linear(hint, x, make, out_shape, nonneg=x.nonneg))
        return
    # count_include_pad=0 divides border windows by fewer elements: a sum pool, then a fixed
    # per-position Scale with 1/count (exact; NIR's AvgPool2d always counts the padding).
    ones = np.pad(np.ones(x.shape[1:]), [(p, p) for p in padding])
    counts = np.lib.stride_tricks.sliding_window_view(ones, kernel)[:: strides[0], :: strides[1]].sum(
        axis=(-2, -1)
    )
    inv = np.broadcast_to(1.0 / counts, out_shape).copy()

    def make_sum(_bias_factor: float) -> nir.NIRNode:
        return nir.SumPool2d(
            kernel_size=np.array(kernel), stride=np.array(strides), padding=np.array(padding)
        )

    summed = ctx.linear(hint, x, make_sum, out_shape)
    name = ctx.add_node(f"{hint}_count", nir.Scale(scale=inv))
    ctx.connect(summed.terms[0][0], name)
    ctx.set_signal(node.output[0], Signal(((name, summed.scale),), out_shape, x.nonneg))


@onnx_op("GlobalAveragePool", since=11)
def global_average_pool(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """GlobalAveragePool → ``AvgPool2d`` over the whole map."""
    x = ctx.signal(node.input[0])
    if len(x.shape) != 3:
        msg = f"only (C, H, W) inputs are supported, got per-sample shape {x.shape}"
        raise ctx.fail(msg)
    ctx.set_signal(node.output[0], _mean_over_space(ctx, node.name or "global_avgpool", x))


def _mean_over_space(ctx: ConversionContext, hint: str, x: Signal) -> Signal:
    """An ``AvgPool2d`` whose window is the whole ``(H, W)`` map: ``(C, H, W)`` → ``(C, 1, 1)``."""
    hw = np.array(x.shape[1:])

    def make(_bias_factor: float) -> nir.NIRNode:
        return nir.AvgPool2d(kernel_size=hw.copy(), stride=hw.copy(), padding=np.array([0, 0]))

    return ctx.linear(hint, x, make, (x.shape[0], 1, 1), nonneg=x.nonneg)


def _selector(ctx: ConversionContext, hint: str, x: Signal, weights: np.ndarray, strides, padding) -> str:
    """A depthwise Conv2d applying the same (k×k) window weights to every channel, fed by ``x``/λ."""
    channels = x.shape[0]
    kernel = np.broadcast_to(weights, (channels, 1, *weights.shape)).copy()
    conv = nir.Conv2d(
        input_shape=(x.shape[1], x.shape[2]),
        weight=kernel,
        stride=strides,
        padding=padding,
        dilation=1,
        groups=channels,
        bias=np.zeros(channels),
    )
    name = ctx.add_node(hint, conv)
    ctx.feed([(x, 1.0 / x.scale)], name)
    return name


@onnx_op("MaxPool", since=11)
@onnx_op("MaxPool", since=12)
def max_pool_tree(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """MaxPool → a balanced tree of IF populations computing ``max(a, b) = b + relu(a − b)``."""
    if len(node.output) > 1 and node.output[1]:
        msg = "its Indices output is used; only the pooled values can be converted"
        raise ctx.fail(msg)
    x = ctx.signal(node.input[0])
    kernel, strides, padding, out_shape = _pool_geometry(node, ctx, x)
    if padding != (0, 0) and not x.nonneg:
        msg = (
            "pads a tensor that may be negative: ONNX pads MaxPool with -inf, NIR convolutions with 0, "
            "which agree only after a ReLU. Put the ReLU before the MaxPool"
        )
        raise ctx.fail(msg)
    hint = node.name or "maxpool"
    lam = x.scale
    k = kernel[0] * kernel[1]

    def onehot(index: int) -> np.ndarray:
        w = np.zeros(kernel)
        w.flat[index] = 1.0
        return w

    # A tree value is (leaf window position, IF populations added on top of that leaf).
    level: list[tuple[int, list[str]]] = [(i, []) for i in range(k)]
    negated: dict[str, str] = {}
    neurons: list[str] = []
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt: list[tuple[int, list[str]]] = []
        for j in range(0, len(level) - 1, 2):
            (leaf_a, ifs_a), (leaf_b, ifs_b) = level[j], level[j + 1]
            tag = f"{hint}_l{depth}_{j // 2}"
            # a − b = (leaf_a − leaf_b) + Σ IF_a − Σ IF_b, the leaf difference as one ±1 conv.
            diff = _selector(ctx, f"{tag}_diff", x, onehot(leaf_a) - onehot(leaf_b), strides, padding)
            parts: list[tuple[Signal, float]] = [(Signal(((diff, 1.0),), out_shape), 1.0)]
            parts += [(Signal(((n, 1.0),), out_shape), 1.0) for n in ifs_a]
            for n in ifs_b:
                if n not in negated:
                    negated[n] = ctx.add_node(f"{n}_neg", nir.Scale(scale=-np.ones(out_shape)))
                    ctx.connect(n, negated[n])
                parts.append((Signal(((negated[n], 1.0),), out_shape), 1.0))
            relu = ctx.spiking(f"{tag}_relu", parts, out_shape)
            neurons.append(relu)
            nxt.append((leaf_b, [*ifs_b, relu]))
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    leaf, ifs = level[0]
    base = _selector(ctx, f"{hint}_pick", x, onehot(leaf), strides, padding)
    terms = ((base, lam), *((n, lam) for n in ifs))
    ctx.layers.append(LayerInfo(node.name or node.output[0], "MaxPool", neurons, out_shape, lam))
    ctx.set_signal(node.output[0], Signal(terms, out_shape, x.nonneg))
    ctx.note(
        f"MaxPool {node.name or node.output[0]!r}: {len(neurons)} IF populations in a {depth}-level "
        f"max tree (max(a, b) = b + relu(a - b)), exact on rates up to about one spike per level"
    )
    if k > 16:
        ctx.note(f"MaxPool {hint!r} has a {kernel} window: the deep max tree adds latency error")


@onnx_op("ReduceMean", since=11)
@onnx_op("ReduceMean", since=18)
def reduce_mean_over_space(node: onnx.NodeProto, ctx: ConversionContext) -> None:
    """The mean over H and W (how the dynamo exporter writes adaptive average pooling to 1×1)."""
    x = ctx.signal(node.input[0])
    attrs = ctx.attrs(node)
    if len(node.input) > 1 and node.input[1]:
        axes = [int(a) for a in np.asarray(ctx.require_constant(node, 1, "axes")).reshape(-1)]
    else:
        axes = [int(a) for a in attrs.get("axes", [])]
    rank = len(x.shape) + 1
    axes = sorted(a + rank if a < 0 else a for a in axes)
    if len(x.shape) != 3 or axes != [2, 3]:
        msg = f"averages over axes {axes} of per-sample shape {x.shape}; only the mean over H and W is supported"
        raise ctx.fail(msg)
    pooled = _mean_over_space(ctx, node.name or "reduce_mean", x)
    if not int(attrs.get("keepdims", 1)):
        pooled = flatten_signal(ctx, f"{node.name or 'reduce_mean'}_flat", pooled)
    ctx.set_signal(node.output[0], pooled)
