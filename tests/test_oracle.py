"""The golden traces are checked by a second implementation written from specs/semantics.md alone.

:mod:`snnx.conformance.oracle` shares no code with ``snnx.ir`` (own flattening, schedule, equations,
naive scalar loops). Every stored golden trace, and every internal node's trace of the reference,
must agree with it: spikes exactly, other values to 1e-9 relative (only summation order differs).
"""

import numpy as np
import pytest

import snnx
from snnx.api import prepare
from snnx.conformance import case_names, load_case, oracle

SPIKING = {"IF", "LIF", "CubaLIF", "Threshold"}


def _assert_close(name, got, want, spiking):
    assert got.shape == want.shape, name
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(want)), name
    if spiking:
        assert np.array_equal(got, want), f"{name}: {int(np.sum(got != want))} spikes differ"
    else:
        assert np.all(np.abs(got - want) <= 1e-9 * np.maximum(1.0, np.abs(want))), name


@pytest.mark.parametrize("name", case_names())
def test_oracle_reproduces_the_golden_trace(name):
    case = load_case(name)
    traces = oracle.run(case.graph, case.inputs)
    for out, golden in case.expected.items():
        srcs = [a for a, b in prepare(case.graph).edges if b == out]
        spiking = all(type(prepare(case.graph).nodes[s]).__name__ in SPIKING for s in srcs)
        _assert_close(out, traces[out], golden, spiking)


@pytest.mark.parametrize("name", case_names())
def test_oracle_agrees_with_every_internal_node_of_the_reference(name):
    case = load_case(name)
    mine = oracle.run(case.graph, case.inputs)
    theirs = snnx.simulate(case.graph, case.inputs, record=True)
    prepared = prepare(case.graph)
    assert set(theirs) == set(mine)
    for node, trace in theirs.items():
        _assert_close(node, mine[node], trace, type(prepared.nodes[node]).__name__ in SPIKING)


def test_long_delays_agree_with_the_oracle():
    # The reference's Delay buffer grows on demand; delays up to and beyond the run length must stay exact.
    import nir

    from snnx.ir.semantics import set_graph_contract

    d = np.array([0, 1, 3, 17, 40, 100]) * 1e-3
    nodes = {"input": nir.Input(input_type=np.array([6])), "d": nir.Delay(delay=d), "output": nir.Output(output_type=np.array([6]))}
    g = set_graph_contract(nir.NIRGraph(nodes=nodes, edges=[("input", "d"), ("d", "output")], metadata={}, type_check=False), dt=1e-3)
    x = np.random.default_rng(0).random((60, 2, 6))
    assert np.array_equal(snnx.simulate(g, x)["output"], oracle.run(g, x)["output"])
