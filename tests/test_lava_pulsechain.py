"""Initial voltages of layers after the first on ``lava`` (fixed_pt): a parallel chain of pulse neurons
kicks each layer on its window's first step (``snnx/plugins/loihi/pulsechain.py``)."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from snnx.api import prepare
from snnx.errors import SnnxError
from snnx.ir.reference import simulate
from snnx.ir.semantics import set_node_contract
from snnx.plugins import get_backend
from snnx.plugins.loihi import compat as lava_compat

LAVA_REASON = lava_compat.lava_available()
pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)"),
]

DT = 1e-3


def _if_chain(sizes: list[int], thresholds: list[float], seed: int) -> nir.NIRGraph:
    """Input -> (Linear -> IF)* -> Output with integer weights and v_init on every layer (reset to 0)."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"in": nir.Input(input_type={"input": np.array([sizes[0]])})}
    edges, prev = [], "in"
    for j, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        th = thresholds[j]
        nodes[f"fc{j}"] = nir.Linear(weight=rng.integers(-4, 7, (n_out, n_in)).astype(float))
        node = nir.IF(r=np.full(n_out, 1 / DT), v_threshold=np.full(n_out, th), v_reset=np.zeros(n_out))
        # Up to twice the largest weight: the kick needs several pulse synapses per neuron.
        set_node_contract(node, reset="value", v_init=rng.integers(0, int(th), n_out).astype(float))
        nodes[f"if{j}"] = node
        edges += [(prev, f"fc{j}"), (f"fc{j}", f"if{j}")]
        prev = f"if{j}"
    nodes["out"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    edges.append((prev, "out"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    graph.metadata = {"snnx": {"version": 1, "dt": DT}}
    return graph


def _layer_spikes(graph: nir.NIRGraph, name: str) -> nir.NIRGraph:
    """The graph cut after neuron ``name`` (its spikes become the output)."""
    keep = list(graph.nodes)[: list(graph.nodes).index(name) + 1]
    nodes = {k: graph.nodes[k] for k in keep}
    nodes["out"] = nir.Output(output_type={"output": np.array(graph.nodes[name].v_threshold.shape)})
    edges = [e for e in graph.edges if e[0] in keep and e[1] in keep] + [(name, "out")]
    cut = nir.NIRGraph(nodes=nodes, edges=edges)
    cut.metadata = graph.metadata
    return cut


def test_pulse_chain_gives_every_layer_its_v_init_exactly() -> None:
    """Three IF layers with v_init everywhere, on random integer (graded) inputs: every layer's spikes
    equal the reference's, and every layer spikes (else the comparison compared nothing)."""
    graph = _if_chain([10, 16, 12, 6], [12.0, 10.0, 9.0], seed=0)
    x = np.random.default_rng(5).integers(0, 3, (12, 3, 10)).astype(np.float64)
    backend = get_backend("lava")
    for name in ("if0", "if1", "if2"):
        flat = prepare(_layer_spikes(graph, name))
        assert backend.refusals(flat) == []
        model = backend.lower(flat, exact=True)
        out = backend.run(model, {"in": x})["out"]
        ref = simulate(flat, {"in": x})["out"]
        assert ref.sum() > 10 and (ref == 0).sum() > 10, f"{name}: the reference spikes too little or too much"
        np.testing.assert_array_equal(out, ref, err_msg=name)
    if name != "if0":
        assert model.chain.kick_pulses >= 2  # kicks up to 11 through weights of at most 6


def test_pulse_chain_matters_and_is_not_saved(tmp_path) -> None:
    """Without the kicks the last layer's spikes differ (the test above can fail), and ``save`` refuses."""
    graph = _if_chain([10, 16, 12, 6], [12.0, 10.0, 9.0], seed=0)
    x = np.random.default_rng(5).integers(0, 3, (12, 3, 10)).astype(np.float64)
    zero = _if_chain([10, 16, 12, 6], [12.0, 10.0, 9.0], seed=0)
    for name in ("if1", "if2"):
        set_node_contract(zero.nodes[name], reset="value", v_init=0.0)
    ref = simulate(prepare(graph), {"in": x})["out"]
    assert not np.array_equal(simulate(prepare(zero), {"in": x})["out"], ref)
    backend = get_backend("lava")
    model = backend.lower(prepare(graph))
    with pytest.raises(SnnxError, match="pulse"):
        backend.save(model, str(tmp_path / "m.net"))


def test_conv_first_layer_v_init_arrives_after_unrolling() -> None:
    """A conv first layer has no dense synapse for a pulse axon: the pulse chain unrolls it, and its
    v_init and the dense layer's after it are exact (every layer spiking)."""
    rng = np.random.default_rng(2)
    conv = nir.Conv2d(
        input_shape=(6, 6), weight=rng.integers(-3, 5, (3, 1, 3, 3)).astype(float), stride=1, padding=1,
        dilation=1, groups=1, bias=np.zeros(3),
    )
    n1 = nir.IF(r=np.full((3, 6, 6), 1 / DT), v_threshold=np.full((3, 6, 6), 8.0), v_reset=np.zeros((3, 6, 6)))
    set_node_contract(n1, reset="value", v_init=np.full((3, 6, 6), 4.0))
    n2 = nir.IF(r=np.full(5, 1 / DT), v_threshold=np.full(5, 10.0), v_reset=np.zeros(5))
    set_node_contract(n2, reset="value", v_init=np.full(5, 5.0))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}), "conv": conv, "if0": n1,
        "flat": nir.Flatten(input_type={"input": np.array([3, 6, 6])}, start_dim=0),
        "fc": nir.Linear(weight=rng.integers(-2, 4, (5, 108)).astype(float)), "if1": n2,
        "out": nir.Output(output_type={"output": np.array([5])}),
    }
    edges = [("in", "conv"), ("conv", "if0"), ("if0", "flat"), ("flat", "fc"), ("fc", "if1"), ("if1", "out")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    graph.metadata = {"snnx": {"version": 1, "dt": DT}}
    x = rng.integers(0, 3, (8, 2, 1, 6, 6)).astype(np.float64)
    backend = get_backend("lava")
    for name in ("if0", "if1"):
        flat = prepare(_layer_spikes(graph, name))
        assert backend.refusals(flat) == []
        out = backend.run(backend.lower(flat, exact=True), {"in": x})["out"]
        ref = simulate(flat, {"in": x})["out"]
        assert ref.sum() > 10 and (ref == 0).sum() > 10, f"{name}: the reference spikes too little or too much"
        np.testing.assert_array_equal(out.reshape(ref.shape), ref, err_msg=name)
