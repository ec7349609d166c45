"""Fixtures for the conversion tests: seeded torch, digits data, and small trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_single_thread():
    # On 2 shared cores one thread trains these tiny models ~8x faster than two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    """sklearn digits as (N, 1, 8, 8) float32 in [0, 1], split 1400 train / 397 test."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


@pytest.fixture(scope="session")
def digits_mlp_onnx(tmp_path_factory, digits):
    """A small digits MLP (64-24-16-10, 4 epochs, seed 0) trained once per session, as an ONNX file."""
    from convert_oracle import export, train
    from torch import nn

    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    xtr, ytr, xte, _yte = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 10))
    path = tmp_path_factory.mktemp("digits_mlp") / "mlp.onnx"
    path.write_bytes(export(train(model, xtr, ytr, epochs=4), xte).SerializeToString())
    torch.set_num_threads(before)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small(tmp_path, rng):
    """A tiny Conv-ReLU-MaxPool-Linear ONNX model in ``tmp_path`` with ``calib.npz`` and ``test.npz``.

    :returns: ``(tmp_path, model_path)``.
    """
    from convert_oracle import export
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    )
    x = rng.uniform(size=(40, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    path = tmp_path / "model.onnx"
    path.write_bytes(export(model, x).SerializeToString())
    np.savez(tmp_path / "calib.npz", x=x)
    np.savez(tmp_path / "test.npz", x=x, y=y)
    return tmp_path, path
