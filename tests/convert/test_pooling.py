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
