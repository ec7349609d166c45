"""Reset "subtract" on backend ``lava``: IF populations on Loihi 2's ATRLIF neuron (``snnx.plugins.loihi.subtract``).

Expected spikes come from the reference simulator (the contract) and, for one neuron, from a hand
derivation; ``lava`` must equal them bit for bit on integer graphs.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from snnx.api import prefix, prepare
from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.ir.reference import simulate
from snnx.ir.semantics import set_node_contract
from snnx.plugins import get_backend

pytestmark = pytest.mark.lava


@pytest.fixture(scope="module")
def lava():
    backend = get_backend("lava")
    if backend.missing_requirements():
        pytest.skip("lava-nc is not installed")
    return backend


def _if(n: int, threshold: float, v_init) -> nir.IF:
    node = nir.IF(r=np.ones(n), v_threshold=np.full(n, threshold))
    return set_node_contract(node, reset="subtract", v_init=np.broadcast_to(np.asarray(v_init, dtype=np.float64), (n,)).copy())


def _two_layer_graph(rng: np.random.Generator, th1: float = 97.0, th2: float = 130.0) -> nir.NIRGraph:
    """Integer IF(subtract) -> IF(subtract) -> integrating readout, biases of both signs, odd thresholds."""
    n_in, h1, h2, o = 12, 10, 8, 4
    nodes = {
        "x": nir.Input(np.array([n_in])),
        "a1": nir.Affine(rng.integers(-40, 60, (h1, n_in)).astype(float), rng.integers(-3, 6, h1).astype(float)),
        "n1": _if(h1, th1, np.ceil(th1 / 2)),
        "a2": nir.Affine(rng.integers(-50, 70, (h2, h1)).astype(float), rng.integers(-3, 4, h2).astype(float)),
        "n2": _if(h2, th2, 65.0),
        "l3": nir.Linear(rng.integers(-60, 60, (o, h2)).astype(float)),
        "ro": nir.I(r=np.ones(o)),
        "y": nir.Output(np.array([o])),
    }
    edges = [("x", "a1"), ("a1", "n1"), ("n1", "a2"), ("a2", "n2"), ("n2", "l3"), ("l3", "ro"), ("ro", "y")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_one_neuron_fires_as_derived_by_hand(lava) -> None:
    """Θ = 10, v_init = 5, input 4 per step: v = 9, 13 (spike, 3), 7, 11 (spike, 1), 5, 9, 13 (spike, 3), 7."""
    graph = nir.NIRGraph(
        nodes={"x": nir.Input(np.array([1])), "w": nir.Linear(np.array([[4.0]])), "n": _if(1, 10.0, 5.0),
               "y": nir.Output(np.array([1]))},
        edges=[("x", "w"), ("w", "n"), ("n", "y")],
    )
    x = np.ones((8, 1, 1))
    model = lava.lower(prepare(graph, dt=1.0), exact=True)
    (out,) = lava.run(model, {"x": x}).values()
    assert out[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 0, 1, 0]
    # Reset to zero would give 0, 1, 0, 0, 1, 0, 0, 1: the test tells the two apart.


@pytest.mark.parametrize("seed", [0, 1])
def test_integer_subtract_chain_equals_the_reference(lava, seed: int) -> None:
    """Graded input (multiples of 1/16), initial states (pulses on layer 1, a pulse chain on layer 2),
    negative and positive biases: every layer's spikes and the readout voltage equal the reference's."""
    rng = np.random.default_rng(seed)
    prepared = prepare(_two_layer_graph(rng), dt=1.0)
    x = np.round(rng.random((16, 3, 12)) * 16) / 16
    ref = simulate(prepared, {"x": x}, record=True)
    model = lava.lower(prepared, exact=True)
    assert "ATRLIF" in lava.describe(model)
    (out,) = lava.run(model, {"x": x}).values()
    np.testing.assert_array_equal(out, ref["y"])
    for name in ("n1", "n2"):
        part = prefix(prepared, name)
        (got,) = lava.run(lava.lower(part, exact=True), {"x": x}).values()
        spikes = int(ref[name].sum())
        assert 0 < spikes < ref[name].size, f"{name}: a vacuous comparison ({spikes} spikes)"
        np.testing.assert_array_equal(got, ref[name])


def test_a_batch_runs_as_each_sample_on_its_own(lava) -> None:
    """A batch is one Lava run (one segment per sample, every state set back between segments) and gives
    exactly what a Lava run of each sample alone gives. The segments' zero steps after a window keep the
    biased neurons firing, so a state carried into the next segment (ATRLIF's v and r, a Dense's pending
    spikes, the pulse chain, the readout) would show. Sample 1 is binary: alone it goes in as unary spikes,
    in the batch as graded spikes with the batch's fraction bits."""
    rng = np.random.default_rng(3)
    graph = _two_layer_graph(rng)
    # Above n1's threshold of 97: this neuron fires on most steps, the zero steps included, so the synapse
    # into n2 holds its spike at a segment's end.
    graph.nodes["a1"].bias[0] = 110.0
    prepared = prepare(graph, dt=1.0)
    x = np.round(rng.random((16, 4, 12)) * 16) / 16
    x[:, 1] = rng.random((16, 12)) < 0.5
    model = lava.lower(prepared, exact=True)
    (out,) = lava.run(model, {"x": x}).values()
    alone = np.concatenate([next(iter(lava.run(model, {"x": x[:, b : b + 1]}).values())) for b in range(4)], axis=1)
    np.testing.assert_array_equal(out, alone)
    np.testing.assert_array_equal(out, simulate(prepared, {"x": x})["y"])
    part = prefix(prepared, "n2")
    (spikes,) = lava.run(lava.lower(part, exact=True), {"x": x}).values()
    ref = simulate(prepared, {"x": x}, record=True)["n2"]
    assert ref[-1].sum() > 0, "the last step spikes: a pending spike carried into the next sample would show"
    np.testing.assert_array_equal(spikes, ref)


def test_thresholds_fit_atrlif_register_even_and_at_most_8190(lava) -> None:
    """ATRLIF holds half the threshold mantissa in a 12-bit register: an odd integer threshold is deployed at
    scale 2 (still exact), one beyond 8190 only at a coarser, inexact scale, which exact=True refuses."""
    prepared = prepare(_two_layer_graph(np.random.default_rng(0), th1=97.0, th2=9001.0), dt=1.0)
    model = lava.lower(prepared)
    q1, q2 = (pops[0].quantisation for pops in model.populations[:2])
    assert (q1.vth, q1.scale, q1.exact) == (194, 2.0, True)
    assert q2.vth <= 8190 and q2.vth % 2 == 0 and not q2.exact
    with pytest.raises(UnsupportedNodeError, match=r"node 'n2': Loihi fixed point is not exact"):
        lava.lower(prepared, exact=True)


def _bias_graph(first_bias: float, reset: str) -> nir.NIRGraph:
    """x -> IF(Θ=4, reset ``reset``, bias ``first_bias``) -> IF(subtract, Θ=4, bias -2) -> output."""
    first = nir.IF(r=np.ones(1), v_threshold=np.full(1, 4.0))
    set_node_contract(first, reset=reset, v_init=np.zeros(1))
    return nir.NIRGraph(
        nodes={"x": nir.Input(np.array([1])), "a1": nir.Affine(np.array([[1.0]]), np.array([first_bias])), "n1": first,
               "a2": nir.Affine(np.array([[12.0]]), np.array([-2.0])), "n2": _if(1, 4.0, 0.0),
               "y": nir.Output(np.array([1]))},
        edges=[("x", "a1"), ("a1", "n1"), ("n1", "a2"), ("a2", "n2"), ("n2", "y")],
    )


def test_a_bias_before_the_first_input_is_taken_back_or_refused(lava) -> None:
    """Layer 2 (ATRLIF) waits 2 steps for its first input; v(0) takes back its bias -2 of those steps and
    starts (2-1)·2 = 2 <= Θ above its lowest point, so it runs exactly. Layer 1 (reset to zero, reset by
    Loihi only when its window starts) waits 1 step: a bias of 3 <= Θ cannot fire it there; a bias of 5
    could, and layer 2, never reset, would keep that spike: refused."""
    x = np.zeros((10, 2, 1))
    x[3:, 1] = 1.0
    prepared = prepare(_bias_graph(3.0, "value"), dt=1.0)
    (out,) = lava.run(lava.lower(prepared, exact=True), {"x": x}).values()
    ref = simulate(prepared, {"x": x})["y"]
    assert ref.sum() > 0
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(UnsupportedNodeError, match=r"node 'n1': its positive bias.*ATRLIF layer 'n2'"):
        lava.lower(prepare(_bias_graph(5.0, "value"), dt=1.0))


def test_leaky_subtract_is_refused_and_atrlif_models_are_not_netx(lava, tmp_path) -> None:
    rng = np.random.default_rng(0)
    graph = _two_layer_graph(rng)
    with pytest.raises(SnnxError, match="netx"):
        lava.save(lava.lower(prepare(graph, dt=1.0)), str(tmp_path / "m.net"))
    assert not (tmp_path / "m.net").exists()
    old = graph.nodes["n2"]
    leaky = nir.LIF(tau=np.full(8, 2.0), r=np.ones(8), v_leak=np.zeros(8), v_threshold=old.v_threshold)
    graph.nodes["n2"] = set_node_contract(leaky, reset="subtract", v_init=np.zeros(8))
    with pytest.raises(UnsupportedNodeError, match="node 'n2': reset 'subtract' with a leak"):
        lava.lower(prepare(graph, dt=1.0))


def test_saturation_of_the_never_reset_state_is_an_error_not_a_wrong_answer(lava) -> None:
    """A threshold near ATRLIF's register (8000; 2^23 / 64 / 8000 = 16.4) and an input that fires neuron 2
    every step: ``v`` climbs 64·Θ per spike and hits Loihi's 24-bit clip after 16 spikes. Below that the run
    equals the reference; beyond it ``lava`` raises instead of returning different spikes."""
    theta = 8000.0
    graph = nir.NIRGraph(
        nodes={"x": nir.Input(np.array([64])), "w": nir.Linear(np.array([[10.0], [60.0], [125.0]]) * np.ones((3, 64))),
               "n": _if(3, theta, np.ceil(theta / 2)), "y": nir.Output(np.array([3]))},
        edges=[("x", "w"), ("w", "n"), ("n", "y")],
    )
    prepared = prepare(graph, dt=1.0)
    model = lava.lower(prepared, exact=True)
    short = np.ones((12, 2, 64))
    (out,) = lava.run(model, {"x": short}).values()
    ref = simulate(prepared, {"x": short})["y"]
    assert ref[:, :, 2].sum() > 0
    np.testing.assert_array_equal(out, ref)
    long = np.ones((40, 2, 64))
    assert simulate(prepared, {"x": long})["y"][:, 0, 2].sum() > 16  # the reference fires on
    with pytest.raises(UnsupportedNodeError, match=r"node 'n'.*saturated"):
        lava.run(model, {"x": long})
