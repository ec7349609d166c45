"""The ``norse`` backend against the reference simulator (shared cases in ``backend_cases.py``)."""

import numpy as np
import pytest

pytest.importorskip("norse")

import snnx  # noqa: E402
from backend_cases import (  # noqa: E402,F401  (pytest collects the imported tests in this module)
    GENERIC,
    GENERIC_DT,
    compare,
    conv_graph,
    neuron,
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
from snnx.errors import SnnxError  # noqa: E402


@pytest.fixture
def backend() -> str:
    return "norse"


@pytest.mark.parametrize(
    ("kind", "reset", "cell"),
    [("LIF", "value", "LIFBoxCell"), ("LIF", "subtract", "LIFBoxCell"), ("IF", "value", "IAFCell"),
     ("IF", "subtract", "IAFCell"), ("LI", None, "LIBoxCell"), ("CubaLIF", "value", "LIFCell"),
     ("CubaLIF", "subtract", "LIFCell"), ("CubaLI", None, "LICell")],
)
def test_uses_norse_cells_with_dt(kind, reset, cell):
    graph = single(neuron(kind, 4, reset=reset or "value", **GENERIC[kind]), 4, GENERIC_DT)
    wrapper = snnx.lower(graph, to="norse").layer("neuron")
    assert type(wrapper.cell).__name__ == cell
    assert type(wrapper.cell).__module__.startswith("norse.")
    assert wrapper.cell.dt == GENERIC_DT


def test_surrogate_choice_keeps_forward_exact():
    graph = conv_graph()
    x = np.random.default_rng(5).random((8, 3, 1, 8, 8)) * 1.5
    for method in ("triangle", "tanh", "heaviside"):
        assert compare(graph, snnx.lower(graph, to="norse", method=method, alpha=10.0), x, "norse")[0] == 0


def test_random_spike_functions_and_unknown_options_are_refused():
    graph = conv_graph()
    with pytest.raises(SnnxError, match="logistic"):
        snnx.lower(graph, to="norse", method="logistic")
    with pytest.raises(SnnxError, match="unknown options"):
        snnx.lower(graph, to="norse", beta=0.9)


def test_norse_accepts_every_node_type_and_cycles():
    caps = snnx.get_backend("norse").capabilities
    assert {"LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Conv2d", "Delay"} <= caps.node_types
    assert caps.cycles and caps.v_init and caps.reset_modes == {"value", "subtract"}
