"""Pooling: average pools exact, MaxPool as an IF max tree (no average-pool substitute)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from convert_oracle import check_onnx_to_nir, export
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError


@pytest.mark.parametrize(
    "pool",
    [
        nn.AvgPool2d(2),
        nn.AvgPool2d(3, stride=2, padding=1),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    ],
    ids=["2x2", "pad-count", "pad-nocount"],
)
def test_average_pool_exact(pool, rng):
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    check_onnx_to_nir(nn.Sequential(pool), x, steps=2, exact=True)


def test_global_average_pool_exact(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = rng.normal(size=(2, 2, 7, 7)).astype(np.float32)
    proto = export(model, x)
    assert any(n.op_type == "GlobalAveragePool" for n in proto.graph.node)
    check_onnx_to_nir(proto, x, steps=2, exact=True)


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(2, 2, 0), (3, 2, 1)])
def test_maxpool_tree_tracks_the_max_of_rates(kernel, stride, padding, rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(kernel, stride, padding), nn.Flatten())
    x = rng.uniform(size=(4, 1, 6, 6)).astype(np.float32)
    result, _snn, _ann = check_onnx_to_nir(model, x, steps=512, tol=0.03, percentile=100.0)
    assert not any(isinstance(n, (nir.AvgPool2d, nir.SumPool2d)) for n in result.graph.nodes.values())
    pool = next(layer for layer in result.layers if layer.op_type == "MaxPool")
    assert len(pool.neurons) == kernel * kernel - 1


def test_maxpool_exceeds_average_on_uneven_windows(rng):
    # The max of a window differs from its mean; an average-pool shortcut would fail this.
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    nn.init.constant_(model[0].weight, 1.0)
    nn.init.constant_(model[0].bias, 0.0)
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 0, 0] = 0.8
    x[0, 0, 1, 1] = 0.2
    _, snn, ann = check_onnx_to_nir(model, x, steps=200, tol=0.02, percentile=100.0)
    assert ann[0, 0] == pytest.approx(0.8)
    assert snn[0, 0] == pytest.approx(0.8, abs=0.02)


def test_padded_maxpool_of_signed_tensor_is_refused(rng):
    x = rng.normal(size=(1, 1, 4, 4)).astype(np.float32)
    proto = export(nn.Sequential(nn.Conv2d(1, 1, 1), nn.MaxPool2d(3, 1, 1)), x)
    with pytest.raises(ConversionError, match="may be negative"):
        convert(proto, x)


def _reduce_mean_model(opset: int, keepdims: int, axes: list[int]):
    from onnx import TensorProto, helper, numpy_helper

    inputs, inits, attrs = ["x"], [], {"keepdims": keepdims}
    if opset >= 18:
        inputs.append("axes")
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    else:
        attrs["axes"] = axes
    out_shape = ["N", 3, 1, 1] if keepdims else ["N", 3]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", inputs, ["y"], name="mean", **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(("opset", "keepdims"), [(13, 1), (13, 0), (18, 1), (18, 0)])
def test_spatial_reduce_mean_exact(opset, keepdims, rng):
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    check_onnx_to_nir(_reduce_mean_model(opset, keepdims, [2, -1]), x, steps=2, exact=True)


def test_reduce_mean_over_channels_is_refused(rng):
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    model = _reduce_mean_model(13, 1, [1])
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 5
    model.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 4
    with pytest.raises(ConversionError, match="only the mean over H and W"):
        convert(model, x)


@pytest.mark.slow
def test_dynamo_exported_cnn_with_adaptive_pool(rng):
    import torch

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    x = rng.uniform(size=(6, 1, 6, 6)).astype(np.float32)
    proto = torch.onnx.export(model, (torch.as_tensor(x[:1]),), dynamo=True, verbose=False).model_proto
    assert "ReduceMean" in {n.op_type for n in proto.graph.node}
    check_onnx_to_nir(proto, x, steps=256, tol=0.05, percentile=100.0)


@pytest.mark.parametrize(("kernel", "stride", "padding", "levels"), [(2, 2, 0, 2), (3, 2, 1, 4)])
def test_max_tree_counts_within_one_spike_per_level_of_the_max_input_count(
    kernel, stride, padding, levels, rng
):
    import torch

    from snnx.ir.reference import simulate

    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.ReLU(), nn.MaxPool2d(kernel, stride, padding), nn.Flatten())
    x = rng.uniform(size=(6, 1, 8, 8)).astype(np.float32)
    result = convert(export(model, x), x)
    relu = result.layers[0]
    steps = 96
    traces = simulate(
        result.graph, np.broadcast_to(x[None].astype(np.float64), (steps, *x.shape)), record=True
    )
    counts = torch.as_tensor(traces[relu.neurons[0]].sum(axis=0))
    want = torch.nn.functional.max_pool2d(counts, kernel, stride, padding).flatten(1).numpy()
    got = traces["readout"][-1] / relu.scale  # the readout integrates λ · (pool output) every step
    assert np.max(np.abs(got - want)) <= levels
    assert abs(np.mean(got - want)) < 0.5  # no bias
