"""Add (residual), Concat, and arithmetic with constants."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from convert_oracle import check_onnx_to_nir, export
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 25, 3))

    def forward(self, x):
        s = self.stem(x)
        return self.head(torch.relu(self.branch(s) + s))


def test_residual_add_has_no_junction_node_and_approximates(rng):
    x = rng.uniform(size=(8, 1, 5, 5)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(Residual(), x, steps=512, tol=0.05, percentile=100.0)
    # Two branch scales differ; they end up in the conv weights and the IF's r, not in Scale nodes.
    assert not any(isinstance(n, nir.Scale) for n in result.graph.nodes.values())
    ifs = {name: n for name, n in result.graph.nodes.items() if isinstance(n, nir.IF)}
    sums = [name for name in ifs if sum(dst == name for _, dst in result.graph.edges) == 2]
    assert len(sums) == 1


class TwoBranchConcat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x) * 0.5], dim=1)


def test_concat_exact(rng):
    x = rng.normal(size=(2, 2, 4, 4)).astype(np.float32)
    check_onnx_to_nir(TwoBranchConcat(), x, steps=2, exact=True)


class ReluConcat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 5)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x) * 3.0)], dim=1))


def test_concat_of_differently_scaled_spike_trains(rng):
    x = rng.normal(size=(16, 4)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(ReluConcat(), x, steps=256, tol=0.05, percentile=100.0)
    scales = [layer.scale for layer in result.layers]
    assert max(scales) > 1.5 * min(scales)


class Arithmetic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("offset", torch.tensor([0.5, -1.0, 2.0]))

    def forward(self, x):
        y = (x - 0.25) * 2.0
        return self.fc(y) / 4.0 + self.offset - self.fc(x)


def test_sub_mul_div_add_with_constants_exact(rng):
    x = rng.normal(size=(3, 3)).astype(np.float32)
    check_onnx_to_nir(Arithmetic(), x, steps=2, exact=True)


class Product(nn.Module):
    def forward(self, x):
        return x * x


def test_product_of_two_signals_is_refused(rng):
    x = rng.normal(size=(2, 3)).astype(np.float32)
    with pytest.raises(ConversionError, match="product of spike rates"):
        convert(export(Product(), x), x)


class ChannelScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.register_buffer("gain", torch.tensor([0.5, -2.0, 3.0]).reshape(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(x) * self.gain


def test_per_channel_multiply_becomes_a_scale_node(rng):
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    result, _, _ = check_onnx_to_nir(ChannelScale(), x, steps=2, exact=True)
    assert any(isinstance(n, nir.Scale) for n in result.graph.nodes.values())
