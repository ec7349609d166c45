"""A convolutional SNN trained with ``lava-dl`` and deployed on Loihi 2 fixed point (``lava``).

NIR ``Conv2d → LIF → SumPool2d → Flatten → Affine → LIF`` on scikit-learn digits (rate code, T = 16) →
``lava-dl`` (SLAYER ``cuba.Conv`` + ``cuba.Flatten`` + ``cuba.Dense``) → surrogate-gradient training →
``raise_`` back to NIR → ``lava`` (a netx conv layer and a composed dense layer, Lava's bit-accurate
``fixed_pt``). The yardstick is the reference simulation of the exported graph.
"""

from __future__ import annotations

import numpy as np
import pytest

import snnx
from snnx.api import prepare
from snnx.bench.loihi import conv_digits_graph, deploy, rate_code, train_spike_counts
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi import compat as lava_compat

LAVA_REASON = lava_compat.lava_available()
pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)"),
]

STEPS = 16


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images[:, None] / 16.0, digits.target  # (N, 1, 8, 8) in [0, 1]
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1437], order[1437:]
    return rate_code(images[train], STEPS), labels[train], rate_code(images[test], STEPS), labels[test]


def test_untrained_conv_snn_on_lava_dl_is_the_reference_spike_for_spike() -> None:
    import torch

    x = rate_code(np.random.default_rng(3).random((6, 1, 8, 8)), STEPS)
    graph = conv_digits_graph()
    expected = simulate(prepare(graph), {"input": x}, record=True)
    net = snnx.lower(graph, to="lava-dl")  # float64: the contract exactly
    backend = get_backend("lava-dl")
    assert [type(b).__name__ for b in net.blocks] == ["Conv", "Flatten", "Dense"]
    out = backend.run(net, {"input": x})["output"]
    assert expected["output"].sum() > 0, "the check needs output spikes"
    np.testing.assert_array_equal(out, expected["output"])
    with torch.no_grad():  # the conv block alone, in SLAYER's own layout (time last)
        conv_spikes = net.blocks[0](torch.as_tensor(np.moveaxis(x, 0, -1)))
    assert expected["lif1"].sum() > 0
    np.testing.assert_array_equal(np.moveaxis(conv_spikes.numpy(), -1, 0), expected["lif1"])


@pytest.fixture
def one_torch_thread():
    """Training on one thread: on 2 shared cores, two threads slow every step down many times over."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_conv_snn_trained_in_lava_dl_keeps_its_accuracy_on_loihi2_fixed_point(tmp_path, one_torch_thread) -> None:
    x_train, y_train, x_test, y_test = _digits()
    net = snnx.lower(conv_digits_graph(), to="lava-dl", dtype="float32")
    losses = train_spike_counts(net, x_train, y_train, epochs=8)
    assert losses[-1] < losses[0]
    snnx.save(get_backend("lava-dl").raise_(net), tmp_path / "conv.nir")
    trained = snnx.load(tmp_path / "conv.nir")

    model = snnx.lower(trained, to="lava")
    assert [layer.kind for layer in model.chain.layers] == ["conv", "dense"]
    result = deploy(trained, x_test, y_test)
    print(f"\nconv digits on {result.samples} test images: {result}\n{model.report()}")
    assert result.reference_accuracy > 0.85, f"training did not work: {result.reference_accuracy:.3f}"
    assert abs(result.loihi_accuracy - result.reference_accuracy) <= 0.01
    # 360 images: 1 pp is 3.6 images, so also the per-sample agreement (measured 98.6 % / 99.2 % / 99.7 %
    # spikes; the disagreeing samples are ones where the reference emits 0-1 output spikes).
    assert result.prediction_agreement >= 0.97
    assert result.top_class_agreement >= 0.98
    assert result.spike_agreement >= 0.99
