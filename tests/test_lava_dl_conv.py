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
from snnx.plugins.loihi.slayer import grid_scale, loihi_grid

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

    # Two epochs of fine-tuning on Loihi's weight grid remove the weight and threshold rounding: only
    # the voltage's rounding at each decay step is left.
    with loihi_grid(net):
        train_spike_counts(net, x_train, y_train, epochs=2, lr=1e-3, seed=100)
    tuned = get_backend("lava-dl").raise_(net)
    model = snnx.lower(tuned, to="lava")
    assert all(q.weight_error == q.threshold_error == q.bias_error == 0.0 for q in model.quantisation), model.report()
    grid = deploy(tuned, x_test, y_test)
    print(f"after fine-tuning on Loihi's grid: {grid}")
    assert grid.reference_accuracy > 0.85
    assert abs(grid.loihi_accuracy - grid.reference_accuracy) <= 0.01
    assert grid.prediction_agreement >= 0.99
    assert grid.spike_agreement >= 0.999


def test_loihi_grid_trains_and_leaves_loihi_exact_weights(one_torch_thread) -> None:
    import torch

    graph = conv_digits_graph(seed=5)
    rng = np.random.default_rng(5)
    graph.nodes["conv"].bias = rng.normal(0, 0.05, 8)  # biases too go on the grid (13-bit mantissas)
    graph.nodes["fc"].bias = rng.normal(0, 0.05, 10)
    net = snnx.lower(graph, to="lava-dl", dtype="float32")
    before = [b.synapse.weight.detach().clone() for b in net.blocks if hasattr(b, "synapse")]
    x = rate_code(np.random.default_rng(0).random((32, 1, 8, 8)), STEPS)
    with loihi_grid(net):
        train_spike_counts(net, x, np.arange(32) % 10, epochs=2, lr=1e-2)
    synapses = [b.synapse for b in net.blocks if hasattr(b, "synapse")]
    assert all(type(s.weight) is torch.nn.Parameter for s in synapses)  # baked: no parametrization left
    for syn, old in zip(synapses, before):
        w, scale = syn.weight.detach().double(), grid_scale(syn.weight)
        assert not torch.equal(w, old.double()), "the straight-through gradient did not train the weights"
        assert torch.equal(w * scale, torch.round(w * scale)) and float((w * scale).abs().max()) <= 127
        b = syn.bias.detach().double() * scale
        assert torch.equal(b, torch.round(b)) and b.abs().max() > 0
    model = snnx.lower(get_backend("lava-dl").raise_(net), to="lava")
    assert all(q.weight_error == q.threshold_error == q.bias_error == 0.0 for q in model.quantisation), model.report()
    assert all(q.scale == 2.0 ** round(np.log2(q.scale)) for q in model.quantisation)
