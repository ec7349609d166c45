"""Conv → Conv2d: linear models convert exactly (the input is an analog current)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from convert_oracle import check_onnx_to_nir, export
from onnx import helper
from torch import nn

from snnx.errors import ConversionError


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({"kernel_size": 3}, (2, 3, 9, 9)),
        ({"kernel_size": 3, "padding": 1}, (2, 3, 8, 8)),
        ({"kernel_size": (3, 5), "stride": (2, 1), "padding": (1, 2)}, (2, 3, 9, 10)),
        ({"kernel_size": 3, "dilation": 2, "padding": 2}, (2, 3, 9, 9)),
        ({"kernel_size": 3, "groups": 3, "padding": 1}, (2, 3, 7, 7)),
        ({"kernel_size": 1, "bias": False}, (2, 3, 5, 5)),
    ],
    ids=["plain", "pad", "stride-rect", "dilation", "depthwise", "no-bias"],
)
def test_conv_matches_onnxruntime_exactly(kwargs, shape, rng):
    conv = nn.Conv2d(3, 6, **kwargs)
    x = rng.normal(size=shape).astype(np.float32)
    result, _snn, _ann = check_onnx_to_nir(conv, x, steps=3, exact=True)
    convs = [n for n in result.graph.nodes.values() if isinstance(n, nir.Conv2d)]
    assert len(convs) == 1
    assert convs[0].groups == kwargs.get("groups", 1)


def test_conv_relu_rates_approximate_ann(rng):
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    x = rng.uniform(size=(8, 2, 6, 6)).astype(np.float32)
    check_onnx_to_nir(model, x, steps=256, tol=0.05, percentile=100.0)


def test_asymmetric_padding_is_refused(rng):
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    model = export(nn.Conv2d(3, 4, 3), x)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for attr in conv.attribute:
        if attr.name == "pads":
            attr.CopyFrom(helper.make_attribute("pads", [0, 0, 1, 1]))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 7
    with pytest.raises(ConversionError, match="asymmetric padding"):
        check_onnx_to_nir(model, x, exact=True)


def _auto_pad_conv(auto_pad: str, kernel: int, rng):
    from onnx import TensorProto, numpy_helper

    w = rng.normal(size=(2, 1, kernel, kernel)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], auto_pad=auto_pad, name="c")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, "H", "W"])],
        [numpy_helper.from_array(w, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_resolving_to_symmetric_padding_is_exact(auto_pad, rng):
    x = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    check_onnx_to_nir(_auto_pad_conv(auto_pad, 3, rng), x, steps=2, exact=True)


def test_auto_pad_same_with_even_kernel_is_refused(rng):
    x = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    with pytest.raises(ConversionError, match="asymmetric padding"):
        check_onnx_to_nir(_auto_pad_conv("SAME_UPPER", 2, rng), x, exact=True)
