"""torchvision ResNet-18/50 (random weights, no download) convert to NIR that validates and runs.

Conversion time of ResNet-50 at 224x224 is a benchmark reported in the README, not asserted here.
"""

from __future__ import annotations

import time

import nir
import numpy as np
import pytest
import torch
from convert_oracle import ann_output, export, snn_rates

from snnx.convert import convert
from snnx.ir.validate import validate

torchvision = pytest.importorskip("torchvision")


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "n_bn"), [("resnet18", 20), ("resnet50", 53)])
def test_resnet_converts_validates_and_runs(arch, n_bn):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval()
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    proto = export(model, x, keep_bn=True)
    start = time.perf_counter()
    result = convert(proto, x)
    elapsed = time.perf_counter() - start
    assert result.folded_batchnorm == n_bn
    validate(result.graph)
    kinds = {type(n).__name__ for n in result.graph.nodes.values()}
    assert kinds <= {"Input", "Output", "Conv2d", "IF", "Scale", "AvgPool2d", "Flatten", "Affine", "I"}
    maxpool = next(layer for layer in result.layers if layer.op_type == "MaxPool")
    assert len(maxpool.neurons) == 8  # 3x3 window: a max tree of 8 IF populations
    snn = snn_rates(result.graph, x[:1], 8)
    ann = ann_output(proto, x[:1])
    assert snn.shape == ann.shape == (1, 1000)
    # Random weights, 8 steps: the rate readout is coarse but must already follow the logits.
    assert np.corrcoef(snn[0], ann[0])[0, 1] > 0.5
    assert elapsed < 60
    assert isinstance(result.graph.nodes["readout"], nir.I)
