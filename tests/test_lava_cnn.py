"""The NIR paper's Sinabs CNN (``tests/data/nir-samples/cnn_sinabs.nir``) deployed on Loihi 2 through Lava.

Input(2, 34, 34) -> Conv2d -> IF -> Conv2d -> IF -> SumPool2d -> Conv2d -> IF -> SumPool2d -> Flatten ->
Affine -> IF -> Affine -> IF, read as NIR at dt = 1. N-MNIST itself is not available here: the input is
Bernoulli events (3 % per pixel per step, out of distribution) and synthetic N-MNIST (MNIST digits moved
along three saccades before a DVS model, snnx.bench.nmnist_synth, 1 ms bins: in distribution).
``specs/backends/lava.md`` has the measurements.
"""

from __future__ import annotations

import numpy as np
import pytest

from snnx.api import prepare
from snnx.bench.data import load_mnist_subset
from snnx.bench.nmnist_synth import synthetic_nmnist
from snnx.errors import UnsupportedNodeError
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi import compat as lava_compat

from nir_samples import SAMPLES

LAVA_REASON = lava_compat.lava_available()
pytestmark = [
    pytest.mark.lava,
    pytest.mark.slow,
    pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)"),
]

CNN = SAMPLES / "cnn_sinabs.nir"
#: Loihi's 8-bit weights against IF neurons, which integrate every rounding error without leak: measured
#: 98.4 % of the output spike trains equal on this input (specs/backends/lava.md), short of 99 %. The
#: reference fires 20 of the 2000 output slots, so an all-silent output would score 99.0 %: the slot
#: metric alone says little here, and the recall bar (4 of 20 spikes measured, 20 %) is what fails a
#: silent or unrelated output.
LAVA_MIN_AGREEMENT = 0.98
LAVA_MIN_RECALL = 0.1
#: The most weight bits per layer whose worst-case step input fits Loihi's 16-bit activation (two 8-bit
#: synapses per connection); measured 98.90 % equal on this input (22 of 2000 differ), still short of 99 %
#: and of the all-silent 99.0 %; recall and precision 45 % (9 of 20 spikes at the reference's slot).
SPLIT_BITS = {"1": 13, "3": 11, "6": 9, "10": 10, "12": 11}
SPLIT_MIN_AGREEMENT = 0.988
SPLIT_MIN_RECALL = 0.3


@pytest.fixture(scope="module")
def cnn() -> tuple:
    graph = prepare(str(CNN), dt=1)
    x = (np.random.default_rng(0).random((100, 2, 2, 34, 34)) < 0.03).astype(np.float64)
    ref = simulate(graph, {"input": x})["output"]
    assert ref.sum() >= 10, "the output layer must spike for the comparison to mean anything"
    return graph, x, ref


def _recall_precision(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Share of the reference's output spikes that ``out`` has at the same (t, sample, neuron), and share
    of ``out``'s spikes that the reference has there; both demand at least one spike on each side."""
    assert ref.sum() > 0 and out.sum() > 0, "no spike on one side: recall/precision would compare nothing"
    both = float(np.logical_and(out > 0, ref > 0).sum())
    return both / float((ref > 0).sum()), both / float((out > 0).sum())


def _run(backend: str, graph, x: np.ndarray, **options) -> np.ndarray:
    b = get_backend(backend)
    assert b.refusals(graph) == []
    return b.run(b.lower(graph, **options), {"input": x})["output"]


def test_sinabs_cnn_on_lava_float_equals_the_reference(cnn: tuple) -> None:
    graph, x, ref = cnn
    np.testing.assert_array_equal(_run("lava-float", graph, x), ref)


def test_sinabs_cnn_on_loihi_fixed_point_is_measured(cnn: tuple) -> None:
    graph, x, ref = cnn
    out = _run("lava", graph, x)
    assert out.sum() > 0
    assert abs(out.sum() - ref.sum()) <= 0.25 * ref.sum()
    assert (out == ref).mean() >= LAVA_MIN_AGREEMENT
    assert min(_recall_precision(out, ref)) >= LAVA_MIN_RECALL


def test_sinabs_cnn_with_split_synapses_on_loihi_fixed_point_is_measured(cnn: tuple) -> None:
    """Two 8-bit synapses per connection (convs unrolled to Dense) bring the output closer to the
    reference than Loihi's 8-bit weights, within what the 16-bit activation allows per layer."""
    graph, x, ref = cnn
    with pytest.raises(UnsupportedNodeError, match="node '6': with 11-bit weights"):
        get_backend("lava").lower(graph, weight_bits=11)
    out = _run("lava", graph, x, weight_bits=SPLIT_BITS)
    assert out.sum() > 0
    assert abs(out.sum() - ref.sum()) <= 0.25 * ref.sum()
    assert (out == ref).mean() >= SPLIT_MIN_AGREEMENT
    assert min(_recall_precision(out, ref)) >= SPLIT_MIN_RECALL


#: Loihi's 8-bit weights on synthetic N-MNIST (test images 0 and 1 of mnist-subset, 300 steps of 1 ms):
#: measured 96.98 % of the output slots equal (228 spikes against the reference's 235), both classes
#: equal; 94.9-96.4 % on 3 x 4 images (benchmarks/results/loihi/nmnist.md), short of 99 %. The reference
#: fires 3.9 % of the slots, so an all-silent output would score 96.08 %: hence the recall and precision
#: bars (measured 60.0 % of the reference's spikes reproduced at their slot, 61.8 % of lava's spikes at
#: one of the reference's; integer model = lava) and the demand to beat the all-silent score.
NMNIST_MIN_AGREEMENT = 0.965
NMNIST_MIN_RECALL = 0.5
NMNIST_MIN_PRECISION = 0.5


@pytest.fixture(scope="module")
def nmnist() -> tuple:
    graph = prepare(str(CNN), dt=1)
    data = load_mnist_subset()
    x = synthetic_nmnist(data.x_test[:2, 0], steps=300, bin_us=1000).astype(np.float64)
    ref = simulate(graph, {"input": x})["output"]
    counts = ref.sum(axis=0)
    assert counts.sum(axis=1).min() >= 20, "every sample's output must spike for the comparison to mean anything"
    # in distribution: the reference names both digits
    np.testing.assert_array_equal(counts.argmax(axis=1), data.y_test[:2])
    return graph, x, ref


def test_sinabs_cnn_on_synthetic_nmnist_on_lava_float_equals_the_reference(nmnist: tuple) -> None:
    graph, x, ref = nmnist
    assert x.max() > 1, "graded input (event counts per bin) is part of what this checks"
    np.testing.assert_array_equal(_run("lava-float", graph, x), ref)


def test_sinabs_cnn_on_synthetic_nmnist_on_loihi_fixed_point_is_measured(nmnist: tuple) -> None:
    """On input of the kind it was trained for the output fires ~4 % of its slots (Bernoulli: 1 %), and
    spike timing diverges more, but the classes stay the reference's."""
    graph, x, ref = nmnist
    out = _run("lava", graph, x)
    assert abs(out.sum() - ref.sum()) <= 0.1 * ref.sum()
    np.testing.assert_array_equal(out.sum(axis=0).argmax(axis=1), ref.sum(axis=0).argmax(axis=1))
    assert (out == ref).mean() >= NMNIST_MIN_AGREEMENT
    assert (out == ref).mean() > 1 - (ref > 0).mean(), "no better than an all-silent output"
    recall, precision = _recall_precision(out, ref)
    assert recall >= NMNIST_MIN_RECALL and precision >= NMNIST_MIN_PRECISION, (recall, precision)
