"""ONNX → ONNX rewrites run before translation: constant folding and BatchNorm folding.

Both keep the model an ordinary ONNX model, so calibration runs the *rewritten* graph in
onnxruntime and sees exactly the tensors the handlers translate.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper

from snnx.convert.loader import infer, tensor_shapes
from snnx.convert.gemm import gemm_weight_bias
from snnx.errors import ConversionError

#: Ops never evaluated at conversion time even with constant inputs (random or side effects).
_NOT_FOLDABLE = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
)


def _evaluate_node(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opsets) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    inputs = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(feeds[name].dtype), feeds[name].shape
        )
        for name in dict.fromkeys(i for i in node.input if i)
    ]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=list(opsets))
    session = ReferenceEvaluator(model)
    return session.run(None, {i.name: feeds[i.name] for i in inputs})


def fold_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Evaluate every node whose inputs are all constant (``Shape`` of a static tensor counts).

    :returns: the rewritten model (constants as initializers, dead nodes removed) and the constants.
    """
    graph = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    shapes = tensor_shapes(model)
    kept: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Shape" and node.input[0] in shapes and node.domain in ("", "ai.onnx"):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            full = shapes[node.input[0]]
            start, end = attrs.get("start", 0), attrs.get("end", len(full))
            consts[node.output[0]] = np.asarray(full[start:end], dtype=np.int64)
            continue
        real_inputs = [i for i in node.input if i]
        if (
            node.op_type not in _NOT_FOLDABLE
            and node.domain in ("", "ai.onnx")
            and all(i in consts for i in real_inputs)
            and (real_inputs or node.op_type == "Constant")
        ):
            try:
                values = _evaluate_node(node, consts, model.opset_import)
            except Exception as exc:
                msg = f"could not fold constant node {node.name or node.output[0]!r} ({node.op_type}): {exc}"
                raise ConversionError(msg) from exc
            for name, value in zip([o for o in node.output if o], values, strict=True):
                consts[name] = np.asarray(value)
            continue
        kept.append(node)
    return _rebuild(model, kept, consts), consts


def _rebuild(
    model: onnx.ModelProto, nodes: list[onnx.NodeProto], consts: dict[str, np.ndarray]
) -> onnx.ModelProto:
    """Keep ``nodes``, the initializers they use, and drop nodes nothing depends on."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    alive: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            alive.append(node)
            needed.update(i for i in node.input if i)
    alive.reverse()
    new_graph = helper.make_graph(
        alive,
        graph.name,
        [i for i in graph.input if i.name not in consts],
        list(graph.output),
        initializer=[
            numpy_helper.from_array(np.asarray(consts[n]), n) for n in sorted(needed) if n in consts
        ],
    )
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return infer(out)


def _consumers(nodes: list[onnx.NodeProto]) -> Counter:
    return Counter(i for n in nodes for i in n.input if i)


def fold_batchnorm(model: onnx.ModelProto, consts: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, int]:
    """Fold each ``BatchNormalization`` into the Conv/Gemm that alone feeds it.

    ``y = γ (W x + b − μ) / √(σ² + ε) + β`` becomes a Conv/Gemm with ``W' = s W`` and
    ``b' = s (b − μ) + β`` where ``s = γ / √(σ² + ε)``. A BatchNormalization with no such producer is
    left alone; its handler turns it into a per-channel affine map.

    :returns: the rewritten model and how many BatchNormalization nodes were folded.
    :raises ConversionError: a BatchNormalization in training mode (it would use batch statistics).
    """
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    uses = _consumers(nodes)
    outputs = {o.name for o in model.graph.output}
    removed: set[int] = set()
    folded = 0
    for bn in nodes:
        if bn.op_type != "BatchNormalization":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        extra_used = [o for o in bn.output[1:] if o and (uses[o] or o in outputs)]
        if attrs.get("training_mode", 0) or extra_used:
            msg = (
                f"ONNX node {bn.name or bn.output[0]!r} (BatchNormalization) is in training mode; export the "
                "model after model.eval() (torch.onnx.export(..., training=TrainingMode.EVAL or PRESERVE))"
            )
            raise ConversionError(msg)
        params = [consts.get(i) for i in bn.input[1:5]]
        if any(p is None for p in params):
            continue
        gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
        s = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        prev = producer.get(bn.input[0])
        if prev is None or uses[bn.input[0]] != 1 or bn.input[0] in outputs:
            continue
        bias_in = prev.input[2] if len(prev.input) > 2 else ""
        if prev.input[1] not in consts or (bias_in and bias_in not in consts):
            continue  # weights or bias computed at run time: nothing to fold into
        c = consts.get(bias_in)
        if prev.op_type == "Conv":
            w = np.asarray(consts[prev.input[1]], dtype=np.float64)
            b = 0.0 if c is None else np.asarray(c, dtype=np.float64)
            new_w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
        elif prev.op_type == "Gemm":
            gattrs = {a.name: helper.get_attribute_value(a) for a in prev.attribute}
            if gattrs.get("transA", 0):
                continue
            w, b = gemm_weight_bias(gattrs, consts[prev.input[1]], c)
            if b is None:
                continue
            new_w = w * s[:, None]
        else:
            continue
        new_b = s * (b - mean) + beta
        dtype = np.asarray(consts[prev.input[1]]).dtype
        tag = (prev.name or prev.output[0]).replace("/", "_")
        w_name, b_name = f"{tag}__bnfold_W", f"{tag}__bnfold_B"
        consts[w_name] = new_w.astype(dtype)
        consts[b_name] = np.asarray(new_b).astype(dtype)
        replacement = onnx.NodeProto()
        replacement.CopyFrom(prev)
        del replacement.input[:]
        replacement.input.extend([prev.input[0], w_name, b_name])
        del replacement.output[:]
        replacement.output.append(bn.output[0])
        if prev.op_type == "Gemm":
            del replacement.attribute[:]
            replacement.attribute.extend([helper.make_attribute("transB", 1)])
        nodes[nodes.index(prev)] = replacement
        producer[bn.output[0]] = replacement
        removed.add(id(bn))
        folded += 1
    if not folded:
        return model, 0
    return _rebuild(model, [n for n in nodes if id(n) not in removed], consts), folded


def prepare(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray], int]:
    """Constant folding, then BatchNorm folding. The model's input must already be pinned.

    :returns: the rewritten model, its constants, and the number of folded BatchNormalization nodes.
    """
    model, consts = fold_constants(model)
    model, folded = fold_batchnorm(model, consts)
    return model, consts, folded
