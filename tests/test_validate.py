"""Validation errors name the node path and the problem."""

import copy

import nir
import numpy as np
import pytest

import snnx
from snnx.errors import ValidationError
from snnx.ir.validate import validate


def test_valid_graph_shapes(small_graph):
    assert validate(small_graph).shapes == {"input": (3,), "fc": (2,), "lif": (2,), "output": (2,)}


def test_dangling_edge(small_graph):
    small_graph.edges.append(("lif", "nowhere"))
    with pytest.raises(ValidationError, match="'nowhere'"):
        validate(small_graph)


def test_missing_output(small_graph):
    del small_graph.nodes["output"]
    small_graph.edges = [e for e in small_graph.edges if e[1] != "output"]
    with pytest.raises(ValidationError, match="no Output node"):
        validate(small_graph)


def test_missing_input(small_graph):
    del small_graph.nodes["input"]
    small_graph.edges = [e for e in small_graph.edges if e[0] != "input"]
    with pytest.raises(ValidationError, match="no Input node"):
        validate(small_graph)


def test_shape_mismatch_names_the_node(small_graph):
    small_graph.nodes["fc"].weight = np.ones((2, 4))
    with pytest.raises(ValidationError, match="node 'fc': takes input of shape \\(4,\\) but receives \\(3,\\)"):
        validate(small_graph)


def test_neuron_count_mismatch(small_graph):
    for p in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
        setattr(small_graph.nodes["lif"], p, np.ones(5))
    with pytest.raises(ValidationError, match="node 'lif': has 5 neurons"):
        validate(small_graph)


def test_wrong_parameter_shape(small_graph):
    small_graph.nodes["fc"].bias = np.zeros(3)
    with pytest.raises(ValidationError, match="'fc.bias': must have shape \\(2,\\)"):
        validate(small_graph)


def test_inconsistent_neuron_parameters(small_graph):
    small_graph.nodes["lif"].tau = np.ones(3)
    with pytest.raises(ValidationError, match="node 'lif': parameter shapes do not agree"):
        validate(small_graph)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_parameters(small_graph, bad):
    small_graph.nodes["fc"].weight[1, 2] = bad
    with pytest.raises(ValidationError, match="'fc.weight': contains"):
        validate(small_graph)


def test_cycle_without_path_to_output(small_graph):
    small_graph.nodes["dead_lif"] = copy.deepcopy(small_graph.nodes["lif"])
    small_graph.nodes["dead_rec"] = nir.Linear(weight=np.eye(2))
    small_graph.edges += [("fc", "dead_lif"), ("dead_lif", "dead_rec"), ("dead_rec", "dead_lif")]
    with pytest.raises(ValidationError, match="no path to an Output"):
        validate(small_graph)


def test_unreachable_node(small_graph):
    small_graph.nodes["orphan"] = nir.Linear(weight=np.eye(2))
    small_graph.edges.append(("orphan", "output"))
    with pytest.raises(ValidationError, match="'orphan' is not reachable"):
        validate(small_graph)


def test_unknown_reset_mode(small_graph):
    small_graph.nodes["lif"].metadata["snnx"] = {"reset": "sideways"}
    with pytest.raises(ValidationError, match="'lif'.*'sideways'"):
        validate(small_graph)


def test_unstable_euler_step_warns(small_graph):
    report = validate(small_graph, dt=0.05)
    assert any("'lif'" in w and "unstable" in w for w in report.warnings)


def test_conv_pool_flatten_shape_inference():
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 10, 12])),
            "conv": nir.Conv2d(input_shape=None, weight=np.ones((4, 2, 3, 3)), stride=np.array([2, 1]),
                               padding=np.array([1, 0]), dilation=1, groups=1, bias=np.zeros(4)),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type=None, start_dim=0),
            "output": nir.Output(output_type=None),
        },
        edges=[("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "output")],
        metadata={},
        type_check=False,
    )
    shapes = validate(g).shapes
    assert shapes["conv"] == (4, 5, 10)
    assert shapes["pool"] == (4, 2, 5)
    assert shapes["flat"] == (40,)


def test_input_of_wrong_shape_to_simulate(small_graph):
    with pytest.raises(ValidationError, match="input 'input' must have shape \\(T, batch, 3\\)"):
        snnx.simulate(small_graph, np.zeros((10, 3)))


# -- warnings and refusals of issue 13 ----------------------------------------------------------------
def _one_if(**contract):
    from snnx.ir.semantics import set_graph_contract, set_node_contract

    node = nir.IF(r=np.ones(2), v_threshold=np.array([1.0, -0.5]), v_reset=np.array([0.0, 0.25]))
    if contract:
        set_node_contract(node, **contract)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "if": node,
                            "output": nir.Output(output_type=np.array([2]))},
                     edges=[("input", "if"), ("if", "output")], metadata={}, type_check=False)
    return set_graph_contract(g, dt=1e-3)


def test_threshold_at_or_below_zero_and_subtract_with_v_reset_warn():
    report = validate(_one_if(reset="subtract"))
    assert any("'if': v_threshold <= 0" in w for w in report.warnings)
    assert any("'if': reset 'subtract' ignores v_reset" in w for w in report.warnings)


def test_delay_not_a_whole_number_of_steps_warns():
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "d": nir.Delay(delay=np.array([1e-3, 1.5e-3])),
                            "output": nir.Output(output_type=np.array([2]))},
                     edges=[("input", "d"), ("d", "output")], metadata={}, type_check=False)
    assert any("'d': delay/dt = 1.5 is not a whole number" in w for w in validate(g, dt=1e-3).warnings)
    assert not validate(g, dt=5e-4).warnings


@pytest.mark.parametrize("version, ok", [(1, True), (2, True), (3, False), ("x", False), (0, False), (1.5, False)])
def test_a_newer_or_malformed_contract_version_is_refused(version, ok):
    g = _one_if()
    g.metadata["snnx"]["version"] = version
    if ok:
        validate(g)
    else:
        with pytest.raises(ValidationError, match="version"):
            validate(g)


def test_a_non_numeric_stored_dt_is_a_validation_error():
    g = _one_if()
    g.metadata["snnx"]["dt"] = "fast"
    with pytest.raises(ValidationError, match="snnx.dt"):
        validate(g)
