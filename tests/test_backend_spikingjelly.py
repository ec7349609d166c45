"""The ``spikingjelly`` backend against the reference simulator (shared cases in ``backend_cases.py``)."""

import numpy as np
import pytest

pytest.importorskip("spikingjelly")

import snnx  # noqa: E402
from backend_cases import (  # noqa: E402,F401  (pytest collects the imported tests in this module)
    GENERIC,
    GENERIC_DT,
    compare,
    conv_graph,
    neuron,
    random_input,
    single,
    test_conv_graph_matches_reference_and_state_is_fresh_per_call,
    test_gradients_reach_every_weight,
    test_membrane_exactly_on_threshold_does_not_spike,
    test_neuron_matches_reference,
    test_raise_after_training_step_matches_module,
    test_raise_of_untrained_model_is_the_original_graph,
    test_recurrent_graph_matches_reference,
    test_save_then_torch_load_gives_a_working_model,
    test_step_by_step_equals_the_multi_step_forward,
    test_training_on_digits_beats_chance_and_raises_to_the_same_model,
)
from snnx.errors import SnnxError, UnsupportedNodeError  # noqa: E402


@pytest.fixture
def backend() -> str:
    return "spikingjelly"


@pytest.mark.parametrize(
    ("kind", "reset", "classes"),
    [("LIF", "value", ["LIFNode"]), ("LIF", "subtract", ["LIFNode"]), ("IF", "value", ["IFNode"]),
     ("IF", "subtract", ["IFNode"]), ("LI", None, ["NonSpikingLIFNode"]), ("I", None, ["NonSpikingIFNode"]),
     ("CubaLIF", "value", ["NonSpikingLIFNode", "LIFNode"]), ("CubaLI", None, ["NonSpikingLIFNode"])],
)
def test_uses_spikingjelly_nodes_in_multistep_mode(kind, reset, classes):
    graph = single(neuron(kind, 4, reset=reset or "value", **GENERIC[kind]), 4, GENERIC_DT)
    wrapper = snnx.lower(graph, to="spikingjelly").layer("neuron")
    found = [m for m in wrapper.modules() if type(m).__module__.startswith("spikingjelly.")]
    assert sorted({type(m).__name__ for m in found} - {"Sigmoid"}) == sorted(set(classes))
    for m in found:
        if hasattr(m, "step_mode"):
            assert m.step_mode == "m"
            assert (m.v_reset is None) == (reset == "subtract")


def test_strict_spike_removes_exactly_the_equal_case():
    import torch
    from spikingjelly.activation_based import neuron as sj_neuron

    from snnx.plugins.spikingjelly.neurons import StrictSpike

    x = torch.full((3, 1, 1), 0.5)
    native = sj_neuron.IFNode(v_threshold=1.0, v_reset=0.0, step_mode="m")
    strict = sj_neuron.IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=StrictSpike(), step_mode="m")
    assert native(x).flatten().tolist() == [0.0, 1.0, 0.0]  # SpikingJelly fires at V == V_th
    assert strict(x).flatten().tolist() == [0.0, 0.0, 1.0]  # the contract does not
    h = torch.tensor([0.9, 1.0, 1.1], requires_grad=True)
    StrictSpike()(h - 1.0).sum().backward()
    assert torch.all(h.grad > 0)  # the surrogate gradient is SpikingJelly's, also at the threshold


def test_tau_not_above_dt_is_refused_with_the_node_named():
    graph = single(neuron("LIF", 4, tau=1e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0), 4, 1e-3)
    reasons = snnx.get_backend("spikingjelly").refusals(graph)
    assert len(reasons) == 1 and "'neuron'" in reasons[0] and "tau/dt > 1" in reasons[0]
    with pytest.raises(UnsupportedNodeError, match="tau/dt > 1"):
        snnx.lower(graph, to="spikingjelly")
    # The same neuron without spikes (NonSpikingLIFNode has no such limit) is accepted and exact.
    li = single(neuron("LI", 4, tau=1e-3, r=1.0, v_leak=0.25), 4, 1e-3)
    assert compare(li, snnx.lower(li, to="spikingjelly"), random_input(), "spikingjelly")[1] <= 1e-5


def test_surrogate_choice_keeps_forward_exact_and_unknown_options_are_refused():
    from spikingjelly.activation_based import surrogate

    graph = conv_graph()
    x = np.random.default_rng(5).random((8, 3, 1, 8, 8)) * 1.5
    model = snnx.lower(graph, to="spikingjelly", surrogate=surrogate.ATan())
    assert compare(graph, model, x, "spikingjelly")[0] == 0
    with pytest.raises(SnnxError, match="unknown options"):
        snnx.lower(graph, to="spikingjelly", beta=0.9)


@pytest.mark.parametrize("name", ["Sigmoid", "ATan", "PiecewiseQuadratic", "SoftSign", "Erf", "S2NN"])
def test_strict_spike_keeps_each_surrogates_gradient(name):
    import torch
    from spikingjelly.activation_based import surrogate

    from snnx.plugins.spikingjelly.neurons import StrictSpike

    x = torch.tensor([-0.7, -0.1, 0.0, 0.1, 0.7])
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    inner = getattr(surrogate, name)()
    spikes = StrictSpike(inner)(a)
    assert spikes.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    spikes.sum().backward()
    inner(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_surrogates_without_a_step_forward_are_refused():
    from spikingjelly.activation_based import surrogate

    graph = conv_graph()
    with pytest.raises(SnnxError, match="PoissonPass"):
        snnx.lower(graph, to="spikingjelly", surrogate=surrogate.PoissonPass())
    with pytest.raises(SnnxError, match="spiking mode"):
        snnx.lower(graph, to="spikingjelly", surrogate=surrogate.Sigmoid(spiking=False))
