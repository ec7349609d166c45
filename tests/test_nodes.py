"""The node-kind table: complete, consistent, and what validation, the reference and capabilities read."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from snnx.errors import ValidationError
from snnx.ir import nodes
from snnx.ir.capabilities import Capabilities, graph_refusals
from snnx.ir.io import NODE_TYPES
from snnx.ir.prepare import prepare


def test_the_reader_accepts_exactly_the_kinds_nir_can_serialise():
    # The reader derives its types from the table; each must be a class nir itself reads and writes.
    assert set(NODE_TYPES) == set(nodes.KINDS) | {"NIRGraph"}
    assert all(getattr(nir, name) is cls for name, cls in NODE_TYPES.items())


@pytest.mark.parametrize("kind", list(nodes.KINDS.values()), ids=list(nodes.KINDS))
def test_each_kind_is_either_an_operator_or_a_state(kind: nodes.NodeKind):
    assert (kind.apply is None) == kind.stateful
    assert (kind.state is None) == (not kind.stateful)
    assert not kind.spiking or kind.neuron, "a spiking kind must have a membrane"
    assert not kind.cuba or kind.neuron
    assert set(kind.time_constants) <= set(kind.params)
    assert kind.cls.__name__ == kind.name


def test_flags_match_the_contract_text():
    # specs/semantics.md §4: the spiking neurons, the integrators/leaky readouts, the current-based ones.
    assert nodes.SPIKING_KINDS == {"IF", "LIF", "CubaLIF"}
    assert nodes.NEURON_KINDS == {"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"}
    assert nodes.CUBA_KINDS == {"CubaLI", "CubaLIF"}
    assert nodes.STATEFUL_KINDS == nodes.NEURON_KINDS | {"Delay"}


def test_unknown_node_type_is_named():
    class Strange:
        pass

    with pytest.raises(ValidationError, match="node 'x': unknown node type Strange"):
        nodes.kind_of(Strange(), "x")


def test_subclass_of_a_nir_class_counts_as_that_class():
    class MyLIF(nir.LIF):
        pass

    node = MyLIF(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    assert nodes.kind_of(node).name == "LIF"
    assert nodes.is_spiking(node)


def test_a_kind_missing_from_capabilities_is_refused_by_name(small_graph):
    caps = Capabilities(node_types=nodes.ALL_KINDS - {"LIF"})
    reasons = graph_refusals(prepare(small_graph), caps)
    assert reasons == ["node type LIF is not supported (nodes 'lif')"]


def test_prepared_graph_is_computed_once_and_reused(small_graph):
    prepared = prepare(small_graph)
    assert prepare(prepared) is prepared
    assert prepared.dt == 1e-3
    assert prepared.graph.metadata["snnx"]["dt"] == 1e-3
    assert prepared.shapes == {"input": (3,), "fc": (2,), "lif": (2,), "output": (2,)}
    assert prepared.schedule.order == ("input", "fc", "lif", "output")
    assert prepare(prepared, dt=1e-4).dt == 1e-4


@pytest.mark.parametrize("dt", [0.0, -1.0, float("nan"), float("inf")])
def test_a_time_step_that_is_not_finite_and_positive_is_refused(small_graph, dt):
    with pytest.raises(ValidationError, match="time step dt must be a finite positive number"):
        prepare(small_graph, dt=dt)


def test_a_v_init_that_does_not_fit_the_neurons_is_named(small_graph):
    from snnx.ir.semantics import set_node_contract

    set_node_contract(small_graph.nodes["lif"], v_init=np.zeros(3))
    with pytest.raises(ValidationError, match=r"node 'lif.v_init': has shape \(3,\) but the node has \(2,\)"):
        prepare(small_graph)
