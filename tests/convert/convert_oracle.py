"""The conversion oracle (onnx2torch-style): export, convert, and compare the SNN with onnxruntime.

``check_onnx_to_nir`` runs the ANN in onnxruntime and the converted graph in the reference
simulator, and compares the readout's rate estimate ``v[T-1] / T`` with the ANN's output.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from snnx.bench.training import train_classifier
from snnx.convert import convert
from snnx.ir.reference import simulate


def export(
    module: torch.nn.Module,
    example: np.ndarray,
    *,
    keep_bn: bool = False,
    opset: int = 17,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """Export ``module`` (eval mode) with the TorchScript exporter, which works offline here.

    :param keep_bn: keep BatchNormalization nodes (no constant folding, PRESERVE mode), so the
        converter's own BN folding is exercised.
    """
    module = module.eval()
    buf = io.BytesIO()
    kwargs = {"dynamic_axes": {"x": {0: "N"}}} if dynamic_batch else {}
    with torch.no_grad():
        torch.onnx.export(
            module,
            (torch.as_tensor(example[:1]),),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y"],
            do_constant_folding=not keep_bn,
            training=torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL,
            **kwargs,
        )
    return onnx.load_from_string(buf.getvalue())


def assert_nir_reads(graph) -> None:
    """The file snnx writes for ``graph`` opens with ``nir.read`` (type check on) and loads back the same."""
    import tempfile
    from pathlib import Path

    import nir

    import snnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.nir"
        snnx.save(graph, path)
        # nir cannot type a non-square 2-D kernel (docs/nir-compatibility.md): only there is it skipped.
        square = all(len(set(np.asarray(n.weight).shape[2:])) <= 1 for n in graph.nodes.values() if isinstance(n, nir.Conv2d))
        if square:
            nir.read(str(path))
        back = snnx.load(path)
    assert set(back.nodes) == set(graph.nodes)
    for name, node in graph.nodes.items():
        if hasattr(node, "groups"):
            assert int(back.nodes[name].groups) == int(node.groups), name
            assert np.array_equal(back.nodes[name].weight, node.weight), name


def ann_output(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def snn_rates(graph, x: np.ndarray, steps: int) -> np.ndarray:
    """The readout's ``v[T-1] / T`` for a constant input presented ``steps`` times."""
    out = simulate(graph, np.broadcast_to(x.astype(np.float64)[None], (steps, *x.shape)))
    (v,) = out.values()
    return v[-1] / steps


def check_onnx_to_nir(
    model: torch.nn.Module | onnx.ModelProto,
    inputs: np.ndarray,
    *,
    steps: int = 64,
    exact: bool = False,
    tol: float = 0.1,
    keep_bn: bool = False,
    calib: np.ndarray | None = None,
    **convert_kwargs,
):
    """Convert ``model`` and compare the SNN's rate output with onnxruntime's ANN output.

    :param exact: the model has no activation (only linear ops), so the SNN must match to float
        precision; otherwise the largest error must be below ``tol`` times the largest ANN output.
    :returns: ``(result, snn, ann)``.
    """
    inputs = np.asarray(inputs, dtype=np.float32)
    proto = model if isinstance(model, onnx.ModelProto) else export(model, inputs, keep_bn=keep_bn)
    ann = ann_output(proto, inputs)
    result = convert(proto, inputs if calib is None else calib, **convert_kwargs)
    assert_nir_reads(result.graph)
    snn = snn_rates(result.graph, inputs, steps).reshape(ann.shape)
    scale = float(np.max(np.abs(ann))) or 1.0
    if exact:
        np.testing.assert_allclose(snn, ann, rtol=1e-5, atol=1e-5 * scale)
    else:
        err = float(np.max(np.abs(snn - ann)))
        assert err <= tol * scale, f"SNN rate error {err:.4g} > {tol} * max|ANN| = {tol * scale:.4g}"
    return result, snn, ann


def train(
    model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 1e-2, seed: int = 0
) -> nn.Module:
    """A few epochs of Adam with a cosine schedule (:func:`snnx.bench.training.train_classifier`); seconds on the digits."""
    # One torch thread: the autouse fixture in conftest.py sets it for every conversion test.
    return train_classifier(model, x, y, epochs=epochs, lr=lr, seed=seed)
