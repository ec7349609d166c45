"""Op handlers are registered through the ``snnx_register_onnx_ops`` hook, like any plugin's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from convert_oracle import ann_output, snn_rates
from onnx import TensorProto, helper, numpy_helper

from snnx.convert import convert, plugin
from snnx.errors import PluginError, UnsupportedNodeError
from snnx.hookspecs import hookimpl
from snnx.plugins import get_onnx_ops, load_plugins
from snnx.registry import OnnxOpRegistrar

REQUIRED = [
    "Conv",
    "Gemm",
    "MatMul",
    "Relu",
    "Clip",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Add",
    "Concat",
    "Identity",
    "Dropout",
    "Softmax",
]


def test_builtin_plugin_registers_every_required_op():
    registry = get_onnx_ops()
    for op in REQUIRED:
        entry = registry.lookup(op, 17)
        assert entry is not None, op
        assert entry.plugin == "snnx.convert.plugin"
    assert "snnx.convert.plugin" in load_plugins().plugins


def _gemm_neg_model(rng) -> onnx.ModelProto:
    w = rng.normal(size=(3, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W"], ["h"], transB=1, name="fc"),
            helper.make_node("Neg", ["h"], ["y"], name="neg"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class NegPlugin:
    """A third-party plugin adding an op: ``Neg`` only flips the signal's coefficients."""

    @staticmethod
    def neg(node, ctx):
        ctx.set_signal(node.output[0], ctx.signal(node.input[0]).scaled(-1.0))

    @hookimpl
    def snnx_register_onnx_ops(self, register):
        register("Neg", self.neg, since=13)


def _registry(*plugins) -> OnnxOpRegistrar:
    registry = OnnxOpRegistrar()
    for name, p in plugins:
        registry.current_plugin = name
        p.snnx_register_onnx_ops(register=registry)
    return registry


def test_a_plugin_handler_extends_the_converter(rng):
    model = _gemm_neg_model(rng)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    with pytest.raises(UnsupportedNodeError, match="'Neg'"):
        convert(model, x, registry=_registry(("snnx.convert.plugin", plugin)))
    registry = _registry(("snnx.convert.plugin", plugin), ("neg-plugin", NegPlugin()))
    result = convert(model, x, registry=registry)
    np.testing.assert_allclose(snn_rates(result.graph, x, 2), ann_output(model, x), rtol=1e-5, atol=1e-6)


def test_a_handler_for_a_newer_opset_is_not_used_for_older_models(rng):
    class Future(NegPlugin):
        @hookimpl
        def snnx_register_onnx_ops(self, register):
            register("Neg", self.neg, since=99)

    registry = _registry(("snnx.convert.plugin", plugin), ("future", Future()))
    with pytest.raises(UnsupportedNodeError, match="'Neg'"):
        convert(_gemm_neg_model(rng), rng.normal(size=(2, 4)).astype(np.float32), registry=registry)


def test_duplicate_handler_names_both_plugins():
    class Clash:
        @hookimpl
        def snnx_register_onnx_ops(self, register):
            register("Relu", lambda node, ctx: None, since=11)

    with pytest.raises(PluginError, match=r"clash.*snnx\.convert\.plugin"):
        _registry(("snnx.convert.plugin", plugin), ("clash", Clash()))


def test_snnx_convert_is_callable_after_the_package_is_imported(rng):
    import snnx
    import snnx.convert as package

    x = rng.normal(size=(2, 4)).astype(np.float32)
    result = snnx.convert(
        _gemm_neg_model(rng), x, registry=_registry(("snnx.convert.plugin", plugin), ("neg", NegPlugin()))
    )
    assert package.ConversionResult is type(result)
