"""The shared torch executor (:mod:`snnx.torch.graph`) against the reference simulator.

Neurons here come from a plain-torch transcription of ``specs/semantics.md`` (``ContractNeuron``), so
these tests check the executor alone: layers, padding, pooling, flatten, fan-in, cycles, delays, export.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

import snnx
from snnx.errors import PluginError, ValidationError
from snnx.ir.semantics import reset_of, set_graph_contract, set_node_contract, v_init_of
from snnx.torch.graph import GraphModule, TorchNeuron, build_graph_module

RNG = np.random.default_rng(1234)


class ContractNeuron(TorchNeuron):
    """IF/LIF/LI/I written straight from the contract, with the executor's default multi-step forward."""

    def __init__(self, name: str, node: nir.NIRNode, dt: float) -> None:
        super().__init__()
        self.node_name, self.node, self.dt = name, node, dt
        f = lambda v: torch.tensor(np.asarray(v, dtype=np.float64))  # noqa: E731
        self.leaky = isinstance(node, (nir.LIF, nir.LI))
        self.spiking = isinstance(node, (nir.LIF, nir.IF))
        self.register_buffer("r", f(node.r))
        self.register_buffer("tau", f(node.tau) if self.leaky else None)
        self.register_buffer("v_leak", f(node.v_leak) if self.leaky else None)
        self.register_buffer("v_th", f(node.v_threshold) if self.spiking else None)
        self.register_buffer("v_reset", f(node.v_reset) if self.spiking else None)
        self.register_buffer("v0", f(v_init_of(node)))

    def init_state(self, x):
        return torch.zeros_like(x) + self.v0

    def step(self, x, v):
        if self.leaky:
            v = v + self.dt / self.tau * (self.v_leak - v + self.r * x)
        else:
            v = v + self.dt * self.r * x
        if not self.spiking:
            return v, v
        s = (v > self.v_th).to(x.dtype)
        v = v - s * self.v_th if reset_of(self.node) == "subtract" else torch.where(s > 0, self.v_reset, v)
        return s, v

    def to_nir(self):
        return self.node


def graph(nodes: dict, edges: list, dt: float = 1e-3) -> nir.NIRGraph:
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    return set_graph_contract(g, dt=dt)


def chain(in_shape, *layers, dt: float = 1e-3) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array(in_shape))}
    nodes.update({f"n{i}": layer for i, layer in enumerate(layers)})
    nodes["output"] = nir.Output(output_type=None)
    names = list(nodes)
    g = graph(nodes, list(zip(names, names[1:])), dt)
    g.nodes["output"] = nir.Output(output_type=np.array(snnx.validate(g).shapes[names[-2]]))
    return g


def lif(n, reset="value", v_init=None, tau=5e-3, v_reset=0.0):
    node = nir.LIF(tau=np.full(n, tau), r=np.full(n, 4.0), v_leak=np.full(n, 0.05),
                   v_threshold=np.ones(n), v_reset=np.full(n, v_reset))
    return set_node_contract(node, reset=reset, v_init=v_init)


def lower(g, dtype=torch.float64) -> GraphModule:
    return build_graph_module(snnx.api.prepare(g), ContractNeuron, backend="test", dtype=dtype)


def run(module, x, dtype=torch.float64):
    with torch.no_grad():
        out = module(torch.as_tensor(x, dtype=dtype))
    return {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else out.numpy()


def assert_matches(g, x, *, spiking: bool):
    """float64: equal to the reference up to rounding; float32: the same spikes."""
    ref = snnx.simulate(g, x)
    (out_name,) = ref
    got = run(lower(g), x)
    np.testing.assert_allclose(got, ref[out_name], rtol=1e-9, atol=1e-9)
    if spiking:
        assert ref[out_name].sum() > 0, "a spiking test case must spike"
        np.testing.assert_array_equal(run(lower(g, torch.float32), x, torch.float32), ref[out_name])


def conv2d(c_in, c_out, k, size, **kw):
    args = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **kw}
    w = RNG.normal(size=(c_out, c_in // args["groups"], *k))
    return nir.Conv2d(input_shape=size, weight=w, bias=RNG.normal(size=c_out) * 0.1, **args)


def pool(cls, k, s, p):
    return cls(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))


# -- stateless layers ----------------------------------------------------------------------------------
STATELESS = {
    "affine": ((5,), lambda: nir.Affine(weight=RNG.normal(size=(3, 5)), bias=RNG.normal(size=3))),
    "linear": ((5,), lambda: nir.Linear(weight=RNG.normal(size=(3, 5)))),
    "scale": ((4,), lambda: nir.Scale(scale=RNG.normal(size=4))),
    "conv2d_same_even_kernel": ((2, 6, 5), lambda: conv2d(2, 3, (2, 4), (6, 5), padding="same")),
    "conv2d_stride_dilation_groups": ((4, 9, 8), lambda: conv2d(4, 6, (3, 2), (9, 8), stride=(2, 1), dilation=(1, 2), groups=2, padding=(1, 2))),
    "conv1d_same_stride": ((3, 11), lambda: nir.Conv1d(input_shape=11, weight=RNG.normal(size=(2, 3, 4)), stride=2, padding="same", dilation=1, groups=1, bias=RNG.normal(size=2))),
    "sumpool_padded": ((2, 5, 5), lambda: pool(nir.SumPool2d, (2, 2), (2, 2), (1, 1))),
    "sumpool_wide_padding": ((1, 4, 4), lambda: pool(nir.SumPool2d, (2, 3), (1, 2), (2, 2))),
    "avgpool_counts_padding": ((2, 5, 5), lambda: pool(nir.AvgPool2d, (3, 3), (2, 2), (1, 1))),
    "flatten_all": ((2, 3, 4), lambda: nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=0, end_dim=-1)),
    "flatten_per_sample_dim1": ((2, 3, 4), lambda: nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=1, end_dim=-1)),
    "flatten_middle": ((2, 3, 4), lambda: nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=0, end_dim=1)),
}


@pytest.mark.parametrize("case", sorted(STATELESS))
def test_stateless_layer_matches_reference(case):
    in_shape, make = STATELESS[case]
    g = chain(in_shape, make())
    assert_matches(g, RNG.normal(size=(4, 3, *in_shape)), spiking=False)


def test_threshold_is_strict_and_matches_reference():
    g = chain((4,), nir.Threshold(threshold=np.array([0.0, 0.5, 1.0, -1.0])))
    x = np.array([[0.0, 0.5, 1.0, -1.0], [0.1, 0.6, 0.9, -0.5]])[:, None, :]
    assert_matches(g, x, spiking=True)
    assert run(lower(g), x)[0].sum() == 0  # exactly at the threshold: no spike


# -- neurons, resets, v_init through the executor ------------------------------------------------------
@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_conv_lif_pool_flatten_affine_network(reset):
    g = chain(
        (2, 8, 8),
        conv2d(2, 4, (3, 3), (8, 8), padding=1),
        lif((4, 8, 8), reset=reset, v_init=RNG.uniform(0, 1, (4, 8, 8))),
        pool(nir.SumPool2d, (2, 2), (2, 2), (0, 0)),
        nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0),
        nir.Affine(weight=RNG.normal(size=(5, 64)) * 0.5, bias=np.zeros(5)),
        lif(5, reset=reset),
    )
    assert_matches(g, (RNG.random((30, 2, 2, 8, 8)) < 0.4).astype(float), spiking=True)


def test_fan_in_sum_and_multiple_inputs_and_outputs():
    nodes = {
        "a": nir.Input(input_type=np.array([3])),
        "b": nir.Input(input_type=np.array([2])),
        "wa": nir.Linear(weight=RNG.normal(size=(4, 3))),
        "wb": nir.Affine(weight=RNG.normal(size=(4, 2)), bias=np.full(4, 0.5)),
        "lif": lif(4),
        "li": nir.LI(tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4)),
        "spikes": nir.Output(output_type=np.array([4])),
        "membrane": nir.Output(output_type=np.array([4])),
    }
    edges = [("a", "wa"), ("b", "wb"), ("wa", "lif"), ("wb", "lif"), ("lif", "spikes"), ("lif", "li"), ("li", "membrane")]
    g = graph(nodes, edges)
    xs = {"a": RNG.random((25, 2, 3)) * 3, "b": RNG.random((25, 2, 2)) * 3}
    ref = snnx.simulate(g, xs)
    module = lower(g)
    with torch.no_grad():
        got = module({k: torch.as_tensor(v) for k, v in xs.items()})
    assert set(got) == {"spikes", "membrane"}
    assert ref["spikes"].sum() > 0
    np.testing.assert_array_equal(got["spikes"].numpy(), ref["spikes"])
    np.testing.assert_allclose(got["membrane"].numpy(), ref["membrane"], rtol=1e-9)


def recurrent_graph() -> nir.NIRGraph:
    """input -> w_in -> lif -> output, with lif -> w_rec -> delay -> lif closing a cycle."""
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "w_in": nir.Affine(weight=RNG.normal(size=(4, 3)) * 2, bias=np.zeros(4)),
        "lif": lif(4, reset="subtract", v_init=np.array([0.0, 0.5, 0.9, -0.2])),
        "w_rec": nir.Linear(weight=RNG.normal(size=(4, 4))),
        "delay": nir.Delay(delay=np.array([0.0, 1e-3, 2e-3, 3e-3])),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "delay"), ("delay", "lif"), ("lif", "output")]
    return graph(nodes, edges)


def test_recurrent_cycle_runs_step_by_step_and_matches_reference():
    g = recurrent_graph()
    module = lower(g)
    assert module.has_cycles
    assert_matches(g, RNG.random((40, 3, 3)) * 2, spiking=True)


@pytest.mark.parametrize("delay", [[0.0, 0.0, 0.0], [2e-3, 2e-3, 2e-3], [0.0, 1e-3, 4e-3], [9e-3, 9e-3, 1e-3]])
def test_delay_whole_sequence_and_step_by_step_agree_with_reference(delay):
    g = chain((3,), nir.Delay(delay=np.array(delay)))
    x = RNG.normal(size=(6, 2, 3))
    assert_matches(g, x, spiking=False)
    module = lower(g).layer("n0")
    xt = torch.as_tensor(x)
    by_step = TorchNeuron.forward(module, xt)  # the base class's loop over step()
    torch.testing.assert_close(by_step, module(xt))


# -- training and export -------------------------------------------------------------------------------
def test_gradients_reach_every_weight_through_threshold_surrogate():
    g = chain(
        (1, 6, 6),
        conv2d(1, 2, (3, 3), (6, 6), padding="same"),
        nir.Threshold(threshold=np.zeros((2, 6, 6))),
        pool(nir.AvgPool2d, (2, 2), (2, 2), (0, 0)),
        nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
        nir.Scale(scale=np.ones(18)),
        nir.Affine(weight=RNG.normal(size=(3, 18)), bias=np.zeros(3)),
    )
    module = lower(g, torch.float32)
    module(torch.rand(5, 4, 1, 6, 6)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_to_nir_keeps_trained_weights_and_contract():
    g = recurrent_graph()
    module = lower(g)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # stand-in for training
    raised = module.to_nir()
    assert raised.metadata["snnx"]["dt"] == pytest.approx(1e-3)
    np.testing.assert_array_equal(raised.nodes["w_in"].weight, module.layer("w_in").weight.detach().numpy())
    x = RNG.random((30, 2, 3)) * 2
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], run(module, x))
    assert not np.array_equal(snnx.simulate(g, x)["output"], run(module, x))  # the change mattered


def test_nested_subgraph_names_are_kept():
    inner = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([3])), "lin": nir.Linear(weight=np.eye(3)),
               "out": nir.Output(output_type=np.array([3]))},
        edges=[("in", "lin"), ("lin", "out")], metadata={}, type_check=False,
    )
    g = graph({"input": nir.Input(input_type=np.array([3])), "sub": inner, "output": nir.Output(output_type=np.array([3]))},
              [("input", "sub"), ("sub", "output")])
    module = build_graph_module(g, ContractNeuron, backend="test")
    assert isinstance(module.layer("sub.lin"), torch.nn.Linear)
    assert "sub_lin" in module.layers


# -- errors --------------------------------------------------------------------------------------------
def test_wrong_input_shape_names_the_input():
    module = lower(chain((5,), nir.Linear(weight=np.ones((2, 5)))))
    with pytest.raises(ValidationError, match=r"input 'input' must have shape \(T, batch, 5\)"):
        module(torch.zeros(3, 5))


def test_factory_must_return_a_torch_neuron():
    g = chain((2,), lif(2))
    with pytest.raises(PluginError, match=r"node 'n0' \(LIF\).*TorchNeuron"):
        build_graph_module(g, lambda name, node, dt: torch.nn.Identity(), backend="bad")


def test_unbatchable_affine_weight_is_refused_with_the_node_name():
    g = chain((5,), nir.Linear(weight=np.ones((2, 5))))
    g.nodes["n0"] = nir.Linear(weight=np.ones((2, 2, 5)))
    # build_graph_module prepares (validates) a plain graph first, so the weight never reaches torch.
    with pytest.raises(ValidationError, match="node 'n0.weight'.*2-D"):
        build_graph_module(g, ContractNeuron, backend="test")


def test_numpy_input_meets_the_module_dtype():
    g = chain((5,), nir.Affine(weight=RNG.normal(size=(2, 5)), bias=np.zeros(2)))
    x = RNG.normal(size=(3, 2, 5))
    out = lower(g, torch.float32)(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.detach().numpy(), snnx.simulate(g, x)["output"], rtol=1e-5)
