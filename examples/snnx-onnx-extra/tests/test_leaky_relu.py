"""The op registry is open: a LeakyRelu model that core snnx refuses converts once this plugin is installed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import snnx
from snnx.convert import convert
from snnx.errors import UnsupportedNodeError
from snnx.plugins import get_onnx_ops, load_plugins
from snnx.registry import OnnxOpRegistrar

ALPHA = 0.2
STEPS = 400


def mlp(activation: str, alpha: float = ALPHA, seed: int = 0) -> onnx.ModelProto:
    """``x (N, 6) -> Gemm(16) -> activation -> Gemm(3)``, opset 17."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.6, (16, 6)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 16).astype(np.float32)
    w2 = rng.normal(0, 0.6, (3, 16)).astype(np.float32)
    b2 = np.zeros(3, np.float32)
    act = (
        helper.make_node("LeakyRelu", ["h"], ["a"], name="act", alpha=alpha)
        if activation == "LeakyRelu"
        else helper.make_node(activation, ["h"], ["a"], name="act")
    )
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
            act,
            helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2", transB=1),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def ann(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def snn(graph, x: np.ndarray) -> np.ndarray:
    """The readout's rate estimate ``v[T-1] / T`` for ``x`` presented as a constant current."""
    (v,) = snnx.simulate(graph, np.broadcast_to(x.astype(np.float64)[None], (STEPS, *x.shape))).values()
    return v[-1] / STEPS


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.normal(0, 1, (256, 6)).astype(np.float32), rng.normal(0, 1, (16, 6)).astype(np.float32)


def core_only() -> OnnxOpRegistrar:
    """The op registry as it is without this plugin."""
    registry = OnnxOpRegistrar()
    registry.entries = {k: e for k, e in get_onnx_ops().entries.items() if e.plugin != "onnx-extra"}
    return registry


def test_registered_through_the_entry_point():
    info = load_plugins().plugins["onnx-extra"]
    assert info.error is None and info.source.startswith("entry point snnx_onnx_extra")
    entry = get_onnx_ops().lookup("LeakyRelu", 17)
    assert entry is not None and entry.plugin == "onnx-extra" and entry.since == 16
    assert get_onnx_ops().lookup("LeakyRelu", 13).since == 6


def test_core_alone_refuses_leaky_relu(data):
    calib, _ = data
    with pytest.raises(UnsupportedNodeError, match="'LeakyRelu'.*register a handler for 'LeakyRelu' in a plugin"):
        convert(mlp("LeakyRelu"), calib, registry=core_only())


def test_leaky_relu_converts_and_tracks_the_ann(data):
    calib, x = data
    model = mlp("LeakyRelu")
    result = convert(model, calib)
    act = [layer for layer in result.layers if layer.op_type == "LeakyRelu"]
    assert len(act) == 1 and len(act[0].neurons) == 2  # the positive and the negative population
    want = ann(model, x)
    got = snn(result.graph, x)
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert err < 0.02, err


def test_the_negative_branch_matters(data):
    """The same weights with ReLU give a different ANN; the SNN must follow LeakyRelu's, not ReLU's."""
    calib, x = data
    leaky = ann(mlp("LeakyRelu"), x)
    relu = ann(mlp("Relu"), x)
    got = snn(convert(mlp("LeakyRelu"), calib).graph, x)
    assert np.max(np.abs(leaky - relu)) > 0.2  # the test model has a real negative part
    assert np.mean(np.abs(got - leaky)) < 0.1 * np.mean(np.abs(got - relu))


def test_alpha_zero_is_a_single_population(data):
    calib, x = data
    result = convert(mlp("LeakyRelu", alpha=0.0), calib)
    (layer,) = [layer for layer in result.layers if layer.op_type == "LeakyRelu"]
    assert len(layer.neurons) == 1
    want = ann(mlp("Relu"), x)  # LeakyRelu with alpha 0 is ReLU
    assert np.max(np.abs(snn(result.graph, x) - want)) < 0.02 * np.max(np.abs(want))


def test_negative_alpha_is_refused_naming_the_node(data):
    calib, _ = data
    with pytest.raises(snnx.SnnxError, match=r"ONNX node 'act' \(LeakyRelu\): alpha = -0.5 is negative"):
        convert(mlp("LeakyRelu", alpha=-0.5), calib)
