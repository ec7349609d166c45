"""Signed spikes (contract version 2, specs/semantics.md §4): hand traces, validation, capabilities."""

import nir
import numpy as np
import pytest

import snnx
from snnx.errors import ValidationError
from snnx.ir.capabilities import ALL_NODE_TYPES, Capabilities, graph_refusals
from snnx.ir.prepare import prepare
from snnx.ir.semantics import set_graph_contract, set_node_contract


def signed_if_graph(signed=True, reset="subtract", v_init=0.5) -> nir.NIRGraph:
    """in(1) -> IF(1) (threshold 1, dt 1 so that v += x; signed, reset subtract, v_init 0.5 by default) -> out."""
    neuron = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    set_node_contract(neuron, reset=reset, v_init=v_init, signed=signed)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "if": neuron,
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "if"), ("if", "output")],
        metadata={},
    )
    return set_graph_contract(graph, dt=1.0)


def test_signed_neuron_takes_back_over_firing():
    # v_init 0.5; inputs 1, 1, -1, -1, -1, 0.2: v = 1.5 fire (0.5), 1.5 fire (0.5), -0.5 take back (0.5, n=1),
    # -0.5 take back (0.5, n=0), -0.5 n=0: nothing (-0.5), -0.3 nothing.
    x = np.array([1, 1, -1, -1, -1, 0.2])[:, None, None]
    out = snnx.simulate(signed_if_graph(), x)["output"][:, 0, 0]
    assert out.tolist() == [1, 1, -1, -1, 0, 0]
    unsigned = snnx.simulate(signed_if_graph(signed=None), x)["output"][:, 0, 0]
    assert unsigned.tolist() == [1, 1, 0, 0, 0, 0]


def test_net_count_is_the_rounded_relu_of_the_accumulated_input():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(200, 1, 1))
    out = snnx.simulate(signed_if_graph(), x)["output"][:, 0, 0]
    q = np.cumsum(x[:, 0, 0])
    assert np.array_equal(np.cumsum(out), np.maximum(0, np.ceil(q + 0.5) - 1))


def test_graphs_are_written_as_contract_version_2():
    # Version 2 also changed the cycle rule, so every graph snnx writes says 2, signed or not.
    assert signed_if_graph().metadata["snnx"]["version"] == 2
    assert signed_if_graph(signed=None).metadata["snnx"]["version"] == 2


def test_signed_needs_subtract_reset():
    with pytest.raises(ValidationError, match="signed"):
        snnx.validate(signed_if_graph(reset="value"))


def test_backends_without_the_capability_refuse_signed_graphs():
    prepared = prepare(signed_if_graph())
    refusals = graph_refusals(prepared, Capabilities(node_types=ALL_NODE_TYPES))
    assert any("signed spikes" in r and "'if'" in r for r in refusals)
    assert not graph_refusals(prepared, Capabilities(node_types=ALL_NODE_TYPES, signed_spikes=True))
    assert not graph_refusals(prepare(signed_if_graph(signed=None)), Capabilities(node_types=ALL_NODE_TYPES))


def test_signed_flag_survives_save_and_load(tmp_path):
    path = tmp_path / "signed.nir"
    snnx.save(signed_if_graph(), path)
    loaded = snnx.load(path)
    x = np.array([1, 1, -1, -1])[:, None, None]
    assert snnx.simulate(loaded, x)["output"][:, 0, 0].tolist() == [1, 1, -1, -1]
