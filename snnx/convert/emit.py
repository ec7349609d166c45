"""Turning the handlers' nodes and edges into a clean NIR graph.

The handlers insert a ``Scale`` wherever a signal needs a scalar factor; this pass folds each such
factor into the weights of the Conv2d/Affine that produces (or alone consumes) the signal, which is
the layer-wise weight normalisation of Diehl et al. 2015 / Rueckauer et al. 2017 carried out on the
graph. What cannot be folded stays an exact ``Scale`` node.
"""

from __future__ import annotations

from collections import defaultdict

import nir
import numpy as np

from snnx.convert.context import PASS_THROUGH, WEIGHTED, ConversionContext
from snnx.ir.semantics import set_graph_contract

#: dt = 1 with r = 1 makes the IF update ``v += x`` exact in floating point (no 1e-4 * 1e4 round-off).
CONVERSION_DT = 1.0


def _adjacency(edges: list[tuple[str, str]]):
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        preds[dst].append(src)
        succs[src].append(dst)
    return preds, succs


def _scale_weights(node: nir.NIRNode, factor: float, *, bias: bool) -> None:
    node.weight = np.asarray(node.weight, dtype=np.float64) * factor
    if bias and hasattr(node, "bias"):
        node.bias = np.asarray(node.bias, dtype=np.float64) * factor


def fold_scales(ctx: ConversionContext) -> int:
    """Fold uniform ``Scale`` nodes into neighbouring weights; returns how many were folded."""
    folded = 0
    for name, factor in list(ctx.uniform_scales.items()):
        preds, succs = _adjacency(ctx.edges)
        target: tuple[str, bool] | None = None
        if len(preds[name]) == 1:
            cur = preds[name][0]
            chain_ok = True
            # Walk up through bias-free homogeneous nodes (pools, flatten) to the weights.
            while isinstance(ctx.nodes[cur], PASS_THROUGH):
                if len(succs[cur]) != 1 or len(preds[cur]) != 1:
                    chain_ok = False
                    break
                cur = preds[cur][0]
            if chain_ok and isinstance(ctx.nodes[cur], WEIGHTED) and len(succs[cur]) == 1:
                target = (cur, True)
        if target is None and len(succs[name]) == 1:
            nxt = succs[name][0]
            if isinstance(ctx.nodes[nxt], WEIGHTED) and preds[nxt] == [name]:
                target = (nxt, False)
        if target is None:
            continue
        node_name, with_bias = target
        _scale_weights(ctx.nodes[node_name], factor, bias=with_bias)
        ins, outs = preds[name], succs[name]
        ctx.edges = [e for e in ctx.edges if name not in e]
        ctx.edges.extend((src, dst) for src in ins for dst in outs)
        del ctx.nodes[name]
        del ctx.uniform_scales[name]
        folded += 1
    return folded


def _channel_factor_path(ctx: ConversionContext, start: str, preds, succs):
    """From a per-channel Scale's successor ``start``, the weighted node its factor can move into.

    :returns: ``(weighted node, flattened)`` or None; the path may pass bias-free channel-wise nodes
        (pools) and Flatten, each with one input and one output.
    """
    cur, flattened = start, False
    for _ in range(64):
        node = ctx.nodes[cur]
        if isinstance(node, (nir.Conv2d, nir.Affine, nir.Linear)):
            return (cur, flattened) if len(preds[cur]) == 1 else None
        if not isinstance(node, PASS_THROUGH) or len(preds[cur]) != 1 or len(succs[cur]) != 1:
            return None
        flattened = flattened or isinstance(node, nir.Flatten)
        cur = succs[cur][0]
    return None


def _scale_input_channels(node: nir.NIRNode, theta: np.ndarray, flattened: bool) -> None:
    """Multiply the weights of ``node`` by ``theta[c]`` along its input channel ``c``."""
    w = np.asarray(node.weight, dtype=np.float64)
    channels = len(theta)
    if isinstance(node, nir.Conv2d):
        groups = int(node.groups)
        per_group_in, per_group_out = w.shape[1], w.shape[0] // groups
        group = np.arange(w.shape[0]) // per_group_out
        c = group[:, None] * per_group_in + np.arange(per_group_in)[None, :]
        node.weight = w * theta[c][:, :, None, None]
    else:
        features = w.shape[1]
        c = np.arange(features) // (features // channels) if flattened else np.arange(features)
        node.weight = w * theta[c][None, :]


def fold_channel_scales(ctx: ConversionContext) -> int:
    """Fold each per-channel Scale (``--steps`` per-channel λ) into the input channels of its consumers."""
    folded = 0
    for name, theta in list(ctx.channel_scale_nodes.items()):
        preds, succs = _adjacency(ctx.edges)
        paths = [_channel_factor_path(ctx, s, preds, succs) for s in succs[name]]
        if not paths or any(p is None for p in paths) or len({p[0] for p in paths}) != len(paths):
            continue
        for target, flattened in paths:
            _scale_input_channels(ctx.nodes[target], np.asarray(theta, dtype=np.float64), flattened)
        ins, outs = preds[name], succs[name]
        ctx.edges = [e for e in ctx.edges if name not in e]
        ctx.edges.extend((src, dst) for src in ins for dst in outs)
        del ctx.nodes[name]
        del ctx.channel_scale_nodes[name]
        folded += 1
    return folded


def build_graph(ctx: ConversionContext) -> nir.NIRGraph:
    """The NIR graph with the snnx contract (dt, reset "subtract", v_init) in its metadata."""
    fold_scales(ctx)
    fold_channel_scales(ctx)
    graph = nir.NIRGraph(nodes=dict(ctx.nodes), edges=list(ctx.edges), metadata={}, type_check=False)
    return set_graph_contract(graph, dt=CONVERSION_DT)
