"""The layering pass (snnx/plugins/loihi/layering.py): a DAG of spiking populations as one chain of layers.

Expected values come from the reference simulator running the *original* graph: the layered graph
must give the same spikes (relays are exact for binary spikes), and the Lava backends must give the
reference's spikes on an exactly representable IF DAG.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from snnx.api import prepare
from snnx.ir.nodes import is_spiking
from snnx.ir.reference import simulate
from snnx.ir.semantics import set_node_contract
from snnx.plugins.loihi import compat as lava_compat
from snnx.plugins.loihi.layering import layer_graph


def _neuron(kind: str, n: int, rng: np.random.Generator, reset: str, dt: float) -> nir.NIRNode:
    th = rng.uniform(0.5, 1.5, n)
    if kind == "lif":
        node = nir.LIF(tau=np.full(n, 4 * dt), r=np.full(n, 1.5), v_leak=np.zeros(n), v_threshold=th, v_reset=np.zeros(n))
    else:
        node = nir.IF(r=np.full(n, 1 / dt), v_threshold=th, v_reset=np.zeros(n))
    return set_node_contract(node, reset=reset, v_init=0.5 * th if reset == "subtract" else 0.0)


def random_dag(
    seed: int, kind: str = "if", reset: str = "value", dt: float = 1.0, readout: str = "I"
) -> nir.NIRGraph:
    """Input -> population 0; every later population reads a random set of earlier ones (so edges skip
    depths), sometimes through a shared stateless node (fan-out); a readout sums two populations: an ``I``
    neuron, or (``readout="linear"``) a stateless ``Scale`` (the chain then ends in a readout synapse)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 7, 5)
    nodes: dict[str, nir.NIRNode] = {"in": nir.Input(input_type={"input": np.array([4])})}
    edges = []
    nodes["w0"] = nir.Affine(weight=rng.normal(0, 1.5, (sizes[0], 4)), bias=rng.normal(0.1, 0.1, sizes[0]))
    nodes["p0"] = _neuron(kind, sizes[0], rng, reset, dt)
    edges += [("in", "w0"), ("w0", "p0")]
    for k in range(1, len(sizes)):
        srcs = sorted(set(rng.choice(k, size=rng.integers(1, min(k, 3) + 1), replace=False).tolist()) | {k - 1})
        nodes[f"p{k}"] = _neuron(kind, sizes[k], rng, reset, dt)
        for s in srcs:
            nodes[f"w{s}_{k}"] = nir.Linear(weight=rng.normal(0.4, 1.0, (sizes[k], sizes[s])))
            edges += [(f"p{s}", f"w{s}_{k}"), (f"w{s}_{k}", f"p{k}")]
    # A shared stateless node feeding two consumers (its output fans out, its input fans in).
    nodes["mix"] = nir.Scale(scale=rng.uniform(0.5, 1.5, sizes[0]))
    nodes["ro0"] = nir.Linear(weight=rng.normal(0, 1, (3, sizes[0])))
    nodes["ro4"] = nir.Linear(weight=rng.normal(0, 1, (3, sizes[4])))
    nodes["mix3"] = nir.Linear(weight=rng.normal(0.5, 1, (sizes[3], sizes[0])))
    nodes["readout"] = nir.I(r=np.ones(3) / dt) if readout == "I" else nir.Scale(scale=rng.uniform(0.5, 1.5, 3))
    nodes["out"] = nir.Output(output_type={"output": np.array([3])})
    edges += [
        ("p0", "mix"), ("mix", "ro0"), ("mix", "mix3"), ("mix3", "p3"), ("p4", "ro4"),
        ("ro0", "readout"), ("ro4", "readout"), ("readout", "out"),
    ]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    graph.metadata = {"snnx": {"version": 2, "dt": dt}}
    return graph


def _inputs(seed: int, steps: int = 40, batch: int = 3) -> np.ndarray:
    return np.random.default_rng(100 + seed).uniform(-0.2, 1.0, (steps, batch, 4))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("kind", "reset"), [("if", "value"), ("if", "subtract"), ("lif", "value")])
def test_layered_graph_gives_the_reference_spikes(seed: int, kind: str, reset: str) -> None:
    graph = random_dag(seed, kind, reset, dt=1e-3 if kind == "lif" else 1.0)
    layered, reasons = layer_graph(graph)
    assert reasons == [] and layered.changed
    assert layered.relays > 0, "the DAG must skip depths, or the relays are not tested"
    x = _inputs(seed)
    ref = simulate(graph, x, record=True)
    got = simulate(layered.graph, x, record=True)
    # The readout is a voltage through composed matrices: equal up to float rounding.
    np.testing.assert_allclose(got["out"], ref["out"], rtol=1e-12, atol=1e-12)
    fired = 0
    for name, members in zip(layered.nodes, layered.layers, strict=True):
        if not is_spiking(layered.graph.nodes[name]):
            continue
        trace = got[name].reshape(*got[name].shape[:2], -1)
        for m in members:
            source = ref[m.relay_of or m.name].reshape(*x.shape[:2], -1)
            want = source[..., m.indices] if m.relay_of else source
            np.testing.assert_array_equal(trace[..., m.start:m.stop], want, err_msg=f"{name}: {m.name}")
            fired += int(want.sum()) if m.relay_of else 0
    assert fired > 20, "relayed populations must spike for the check to mean anything"


@pytest.mark.parametrize("seed", range(3))
def test_a_stateless_readout_summing_populations_is_layered(seed: int) -> None:
    """The chain then ends in a readout synapse composed from both populations (no neuron of its own)."""
    graph = random_dag(seed, readout="linear")
    layered, reasons = layer_graph(graph)
    assert reasons == [] and layered.changed
    x = _inputs(seed)
    ref = simulate(graph, x)["out"]
    assert np.abs(ref).sum() > 0, "the readout must see spikes for the check to mean anything"
    np.testing.assert_allclose(simulate(layered.graph, x)["out"], ref, rtol=1e-12, atol=1e-12)


def test_layers_are_one_chain_and_relays_carry_only_what_is_read() -> None:
    layered, _ = layer_graph(random_dag(0))
    g = layered.graph
    fan_in = [d for _s, d in g.edges]
    fan_out = [s for s, _d in g.edges]
    assert len(set(fan_in)) == len(fan_in) and len(set(fan_out)) == len(fan_out), g.edges
    for members in layered.layers:
        for m in members:
            assert m.relay_of is None or 0 < m.indices.size <= int(np.prod(prepare(random_dag(0)).shapes[m.relay_of]))


def test_a_chain_comes_back_as_it_is() -> None:
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}), "fc": nir.Linear(weight=np.eye(2)),
        "n": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    layered, reasons = layer_graph(nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "n"), ("n", "out")]))
    assert reasons == [] and not layered.changed and set(layered.graph.nodes) == set(nodes)


def _skip_graph(skip_from: str, kind=nir.IF, second: str = "b") -> nir.NIRGraph:
    """in -> a -> b -> c with an extra edge skip_from -> c."""
    def neuron(k=nir.IF):
        if k is nir.LI:
            return nir.LI(tau=np.full(2, 2.0), r=np.ones(2), v_leak=np.zeros(2))
        if k is nir.CubaLIF:
            return nir.CubaLIF(
                tau_syn=np.full(2, 2.0), tau_mem=np.full(2, 2.0), r=np.ones(2), v_leak=np.zeros(2),
                w_in=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2),
            )
        return nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2))

    nodes = {
        "in": nir.Input(input_type={"input": np.array([2])}),
        "wa": nir.Linear(weight=np.eye(2)), "a": neuron(kind if second == "a" else nir.IF),
        "wb": nir.Linear(weight=np.eye(2)), "b": neuron(kind if second == "b" else nir.IF),
        "wc": nir.Linear(weight=np.eye(2)), "c": neuron(),
        "skip": nir.Linear(weight=np.eye(2)), "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "wa"), ("wa", "a"), ("a", "wb"), ("wb", "b"), ("b", "wc"), ("wc", "c"), ("c", "out"),
             (skip_from, "skip"), ("skip", "c")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    graph.metadata = {"snnx": {"version": 2, "dt": 1.0}}
    return graph


@pytest.mark.parametrize(
    ("graph", "needle"),
    [
        (_skip_graph("in"), "the graph input 'in' also feeds 'c'"),
        (_skip_graph("a", nir.LI, second="a"), "node 'a' (LI) is non-spiking and feeds 'c'"),
        (_skip_graph("a", nir.CubaLIF, second="b"), "through a CubaLIF layer"),
    ],
)
def test_what_cannot_be_relayed_is_refused_with_the_reason(graph: nir.NIRGraph, needle: str) -> None:
    layered, reasons = layer_graph(graph)
    assert layered is None
    assert any(needle in r for r in reasons), reasons


def test_mixed_neuron_kinds_at_one_depth_are_refused() -> None:
    graph = random_dag(1)
    graph.nodes["p1"] = nir.LIF(
        tau=np.full(graph.nodes["p1"].r.shape, 2.0), r=np.ones_like(graph.nodes["p1"].r),
        v_leak=np.zeros_like(graph.nodes["p1"].r), v_threshold=np.ones_like(graph.nodes["p1"].r),
        v_reset=np.zeros_like(graph.nodes["p1"].r),
    )
    graph.nodes["extra"] = nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2))
    graph.nodes["wx"] = nir.Linear(weight=np.ones((2, int(graph.nodes["p0"].r.size))))
    graph.nodes["wx2"] = nir.Linear(weight=np.ones((3, 2)))
    graph.edges += [("p0", "wx"), ("wx", "extra"), ("extra", "wx2"), ("wx2", "readout")]
    layered, reasons = layer_graph(graph)
    assert layered is None
    assert any("one neuron kind" in r and "'extra'" in r and "'p1'" in r for r in reasons), reasons


# -- on Lava -------------------------------------------------------------------------------------------

LAVA_REASON = lava_compat.lava_available()
needs_lava = pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)")


def exact_if_dag() -> nir.NIRGraph:
    """An IF DAG whose numbers Loihi represents exactly: dyadic weights, thresholds 1 and 2, binary input,
    a skip edge (relayed), a population read by two later ones, and a spiking output population."""
    rng = np.random.default_rng(7)

    def w(o, i):
        return rng.integers(-3, 6, (o, i)) / 4

    def if_(n, th):
        return set_node_contract(nir.IF(r=np.ones(n), v_threshold=np.full(n, th), v_reset=np.zeros(n)), reset="value")

    nodes = {
        "in": nir.Input(input_type={"input": np.array([6])}),
        "w_a": nir.Linear(weight=w(8, 6)), "a": if_(8, 1.0),
        "w_b": nir.Linear(weight=w(5, 8)), "b": if_(5, 2.0),
        "w_c": nir.Linear(weight=w(4, 8)), "c": if_(4, 1.0),
        "w_bd": nir.Linear(weight=w(3, 5)), "w_cd": nir.Linear(weight=w(3, 4)), "w_ad": nir.Linear(weight=w(3, 8)),
        "d": if_(3, 1.0),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [
        ("in", "w_a"), ("w_a", "a"), ("a", "w_b"), ("w_b", "b"), ("a", "w_c"), ("w_c", "c"),
        ("b", "w_bd"), ("c", "w_cd"), ("a", "w_ad"), ("w_bd", "d"), ("w_cd", "d"), ("w_ad", "d"), ("d", "out"),
    ]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    graph.metadata = {"snnx": {"version": 2, "dt": 1.0}}
    return graph


@pytest.mark.lava
@needs_lava
@pytest.mark.parametrize("backend", ["lava-float", "lava"])
def test_lava_runs_an_if_dag_spike_for_spike(backend: str) -> None:
    from snnx.plugins import get_backend

    flat = prepare(exact_if_dag())
    x = (np.random.default_rng(8).random((30, 2, 6)) < 0.5).astype(np.float64)
    ref = simulate(flat, x)["out"]
    assert ref.sum() > 15, "the output population must spike to mean anything"
    b = get_backend(backend)
    assert b.refusals(flat) == []
    model = b.lower(flat, exact=True) if backend == "lava" else b.lower(flat)
    assert len(model.chain.layers) == 3, "a, b+c, d: three Loihi layers (a relayed into the middle one)"
    np.testing.assert_array_equal(b.run(model, {"in": x})["out"], ref)
