"""A converted CNN with MaxPool deployed with ``--target loihi`` on ``lava`` (Loihi 2 fixed point).

The max tree fans out and in; the layering pass (``snnx/plugins/loihi/layering.py``) makes it one chain
of Loihi layers with relays. Expected values: the reference simulator running the same graph.
"""

from __future__ import annotations

import numpy as np
import pytest
from convert_oracle import export
from torch import nn

import snnx
from snnx.api import prepare
from snnx.bench.training import train_classifier
from snnx.convert.targets import retarget
from snnx.ir.reference import simulate


def test_target_loihi_max_tree_fires_on_whole_units(digits) -> None:
    """The max tree's IFs see whole numbers of thresholds: ``--target loihi`` doubles their input gain
    (one unit of input crosses the threshold from zero state) and leaves thresholds and the ReLU layers alone."""
    xtr, *_ = digits
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 3))
    result = snnx.convert(export(model, xtr[:8]), xtr[:64])
    loihi = retarget(result, "loihi")
    tree = {n for layer in result.layers if layer.op_type == "MaxPool" for n in layer.neurons}
    relu = {n for layer in result.layers if layer.op_type == "Relu" for n in layer.neurons}
    assert tree and relu
    for name in tree:
        node = loihi.graph.nodes[name]
        np.testing.assert_array_equal(node.v_threshold, result.graph.nodes[name].v_threshold)
        np.testing.assert_array_equal(node.r, 2 * result.graph.nodes[name].r)
        # One unit of input (r = v_threshold in a converted graph) now crosses the strict threshold at once.
        assert np.all(node.r * 1.0 > node.v_threshold)
    for name in relu:
        np.testing.assert_array_equal(loihi.graph.nodes[name].v_threshold, result.graph.nodes[name].v_threshold)
        np.testing.assert_array_equal(loihi.graph.nodes[name].r, result.graph.nodes[name].r)


@pytest.mark.slow
@pytest.mark.lava
def test_converted_maxpool_cnn_on_lava_agrees_with_the_reference(digits) -> None:
    from snnx.plugins import get_backend
    from snnx.plugins.loihi.layering import layer_graph

    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed (snnx install lava)")
    xtr, ytr, xte, _yte = digits
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(96, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    model = train_classifier(model, xtr, ytr, epochs=4, cosine=False)
    result = retarget(snnx.convert(export(model, xtr[:8]), xtr[:300]), "loihi")
    graph = prepare(result.graph)
    assert lava.refusals(graph) == []
    layered, _ = layer_graph(graph)
    assert layered.changed and layered.relays > 0, "the max tree needs relays to become a chain"
    steps, n = 24, 12
    x = xte[:n].astype(np.float64)
    xs = {result.input_name: np.broadcast_to(x[None], (steps, *x.shape))}
    out = result.output_names[0]
    ref = simulate(graph, xs)[out][-1].reshape(n, -1)
    got = lava.run(lava.lower(graph), xs)[out][-1].reshape(n, -1)
    # Fixed point (8-bit weights, graded input on a 2^-e grid) may flip a near tie, not more.
    assert np.sum(got.argmax(1) == ref.argmax(1)) >= n - 1
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95
