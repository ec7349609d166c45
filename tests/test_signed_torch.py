"""Signed spikes (specs/semantics.md §4, version 2) on the torch backends: snnTorch, Norse, SpikingJelly.

Expected values come from the golden traces (reference simulator, checked by the oracle and by hand)
and from the reference run on the same input; gradients are checked for being finite and for the
``-1`` branch contributing.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

import snnx
from snnx.conformance import CASES_DIR, load_case
from snnx.ir.capabilities import graph_refusals
from snnx.ir.prepare import prepare
from snnx.ir.semantics import set_graph_contract, set_node_contract
from snnx.plugins import get_backend
from snnx.torch.signed import signed_step

BACKENDS = ("snntorch", "norse", "spikingjelly")
# from the index, not load_case: collection should not read every case's files
SIGNED_CASES = sorted(n for n, meta in json.loads((CASES_DIR / "index.json").read_text()).items()
                      if "signed" in meta["features"])
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def test_the_suite_has_signed_cases():
    assert {"if_signed", "lif_signed", "cubalif_signed", "mlp_signed"} <= set(SIGNED_CASES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_declares_signed_spikes(backend):
    assert get_backend(backend).capabilities.signed_spikes
    assert not graph_refusals(prepare(load_case("mlp_signed").graph), get_backend(backend).capabilities)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("case", SIGNED_CASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_case_spike_for_spike(backend, case, dtype):
    c = load_case(case)
    model = snnx.lower(c.graph, to=backend, dtype=dtype)
    (name, x), = c.inputs.items()
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=DTYPES[dtype])).double().numpy()
    want = c.expected["output"]
    assert (want < 0).sum() > 0  # the -1 branch is compared, not only the +1 one
    np.testing.assert_array_equal(got, want)


def _recurrent_signed() -> nir.NIRGraph:
    # in -> fc -> if <-> rec: the edge rec -> if is delayed, so the executor runs step by step
    # (init_state/step) rather than through each neuron's forward.
    node = nir.IF(r=np.ones(3), v_threshold=np.full(3, 1.0), v_reset=np.zeros(3))
    set_node_contract(node, reset="subtract", v_init=np.full(3, 0.5), signed=True)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=np.array([[1.0, -0.5], [-0.75, 1.0], [0.5, 0.5]])),
            "if": node,
            "rec": nir.Linear(weight=np.array([[0.0, -0.5, 0.25], [0.5, 0.0, -0.5], [-0.25, 0.5, 0.0]])),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc"), ("fc", "if"), ("if", "rec"), ("rec", "if"), ("if", "output")],
        metadata={},
    )
    return set_graph_contract(g, dt=1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_recurrent_layer_runs_step_by_step_like_the_reference(backend):
    g = _recurrent_signed()
    x = np.random.default_rng(3).integers(-4, 5, size=(30, 2, 2)) / 4
    want = snnx.simulate(g, x)["output"]
    assert (want < 0).sum() > 0
    model = snnx.lower(g, to=backend, dtype="float32")
    assert model.has_cycles
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_graph_raises_back_signed(backend):
    c = load_case("mlp_signed")
    raised = snnx.raise_(snnx.lower(c.graph, to=backend), backend=backend)
    (x,) = c.inputs.values()
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], c.expected["output"])


# -- gradients ----------------------------------------------------------------------------------------------
def _one_neuron(signed: bool) -> nir.NIRGraph:
    node = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    set_node_contract(node, reset="subtract", v_init=np.full(1, 0.5), signed=signed or None)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1])),
            "w": nir.Scale(scale=np.ones(1)),
            "if": node,
            "output": nir.Output(output_type=np.array([1])),
        },
        edges=[("input", "w"), ("w", "if"), ("if", "output")],
        metadata={},
    )
    return set_graph_contract(g, dt=1.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_flows_through_the_negative_branch(backend):
    # v: 0.5 -> 1.5 (+1, v = 0.5) -> -1.0. Signed, the second step is a -1; unsigned a 0, from the same
    # membrane. The gradient of that step's output with respect to the weight differs exactly by the
    # -1 branch's surrogate, so it must differ (and be finite). (With inputs 1, -1 dv/dw would be 0.)
    x = torch.tensor([1.0, -1.5]).reshape(2, 1, 1)
    grads, outs = {}, {}
    for signed in (True, False):
        model = snnx.lower(_one_neuron(signed), to=backend, dtype="float32")
        out = model(x)
        out[1].sum().backward()
        (param,) = list(model.parameters())
        grads[signed], outs[signed] = param.grad.clone(), out.detach().flatten().tolist()
    assert outs == {True: [1.0, -1.0], False: [1.0, 0.0]}
    assert torch.isfinite(grads[True]).all()
    assert not torch.equal(grads[True], grads[False])


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_model_trains(backend):
    c = load_case("mlp_signed")
    model = snnx.lower(c.graph, to=backend, dtype="float32")
    (x,) = c.inputs.values()
    out = model(torch.as_tensor(x, dtype=torch.float32))
    loss = ((out.sum(0) - 1.0) ** 2).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_signed_step_by_hand():
    # a surrogate with a known slope: forward (x > 0), backward 1 everywhere
    def spike(x):
        return x + ((x > 0).to(x.dtype) - x).detach()

    v = torch.tensor([1.5, -0.25, 0.0, 0.0, 0.5], requires_grad=True)
    n = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    s, v_new, n_new = signed_step(v, 1.0, n, spike)
    assert s.tolist() == [1, -1, -1, 0, 0]
    assert v_new.tolist() == [0.5, 0.75, 1.0, 0.0, 0.5]
    assert n_new.tolist() == [1, 0, 0, 0, 1]
    s.sum().backward()
    # ds/dv = spike'(v - 1) + gate * spike'(v): 1 everywhere, plus 1 where the -1 branch is open (n > 0 and
    # no +1), whether or not it fired: a neuron in the rest band learns towards taking a spike back
    assert v.grad.tolist() == [1, 2, 2, 1, 2]


def test_spikingjelly_takes_a_signed_lif_with_tau_equal_to_dt():
    # LIFNode needs tau/dt > 1 and unsigned LIF nodes with tau = dt are refused; a signed one charges
    # through NonSpikingLIFNode (section 2a of specs/backends/spikingjelly.md), which has no such limit.
    node = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), v_reset=np.zeros(2))
    set_node_contract(node, reset="subtract", v_init=np.full(2, 0.5), signed=True)
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "lif": node, "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "lif"), ("lif", "output")],
        metadata={},
    )
    g = set_graph_contract(g, dt=1.0)
    backend = get_backend("spikingjelly")
    assert not backend.refusals(prepare(g))
    assert backend.refusals(prepare(_with_signed(g, False)))
    x = np.array([[1.5, 0.25], [-0.5, 2.0], [0.25, -1.0], [-1.0, 0.5]])[:, None, :]
    want = snnx.simulate(g, x)["output"]
    assert (want < 0).sum() > 0
    with torch.no_grad():
        got = snnx.lower(g, to="spikingjelly")(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_array_equal(got, want)


def _with_signed(graph: nir.NIRGraph, signed: bool) -> nir.NIRGraph:
    import copy

    g = copy.deepcopy(graph)
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            set_node_contract(node, signed=signed)
    return g
