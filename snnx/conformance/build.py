"""Generate the conformance cases: ``python -m snnx.conformance.build [DIR]``.

Every case is built here from code, its input is drawn from a fixed seed, and its golden output is
what the reference simulator computes. Regenerating must reproduce the stored files exactly; a test
checks that, so a change to the reference that alters any golden trace cannot go unnoticed.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import nir
import numpy as np

from snnx.conformance import CASES_DIR
from snnx.ir.io import save, save_traces
from snnx.ir.reference import simulate
from snnx.ir.semantics import set_graph_contract, set_node_contract
from snnx.ir.validate import validate

A = np.asarray


def _f(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _graph(nodes: dict, edges: list, dt: float) -> nir.NIRGraph:
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    return set_graph_contract(g, dt=dt)


def _chain(*named: tuple[str, nir.NIRNode], dt: float, in_shape: tuple) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=A(in_shape)), **dict(named), "output": nir.Output(output_type=None)}
    names = list(nodes)
    g = _graph(nodes, list(zip(names[:-1], names[1:])), dt)
    g.nodes["output"] = nir.Output(output_type=A(validate(g).shapes[names[-2]]))
    return g


def lif(n: int, tau=0.01, r=1.0, v_leak=0.0, v_th=1.0, v_reset=0.0, **contract) -> nir.LIF:
    """``n`` LIF neurons with per-neuron copies of the given values; ``contract`` goes to set_node_contract."""
    node = nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak),
                   v_threshold=np.full(n, v_th), v_reset=np.full(n, v_reset))
    return set_node_contract(node, **contract) if contract else node


def spikes(rng: np.random.Generator, shape: tuple, rate: float = 0.4) -> np.ndarray:
    """Bernoulli spike trains of ``shape`` with probability ``rate`` per entry."""
    return (rng.random(shape) < rate).astype(np.float64)


CaseFn = Callable[[np.random.Generator], tuple[nir.NIRGraph, dict, str, list[str]]]
CASES: dict[str, CaseFn] = {}


def case(fn: CaseFn) -> CaseFn:
    """Register a case builder under its name without the ``case_`` prefix."""
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


# -- the smallest cases: numbers chosen so hand computation is exact in binary floating point ------
@case
def case_if_value(rng):
    g = _chain(("if", nir.IF(r=_f(1.0, 2.0), v_threshold=_f(1.0, 1.0), v_reset=_f(0.0, -0.5))), dt=1.0, in_shape=(2,))
    x = np.array([[0.5, 0.25], [0.75, 0.25], [0.25, 0.5], [1.5, 0.25], [0.0, 0.5], [0.5, 0.5]])[:, None, :]
    return g, {"input": x}, "IF, reset to v_reset (0 and -0.5: n1 fires at t=5, not t=4), r scales input", ["IF", "reset:value"]


@case
def case_if_subtract(rng):
    node = set_node_contract(nir.IF(r=_f(1.0, 1.0), v_threshold=_f(1.0, 0.5), v_reset=_f(0.0, 0.0)), reset="subtract")
    g = _chain(("if", node), dt=1.0, in_shape=(2,))
    x = np.array([[0.75, 0.25], [0.75, 0.5], [2.5, 0.25], [0.0, 1.0], [0.0, 0.0], [0.25, 0.0]])[:, None, :]
    return g, {"input": x}, "IF, subtract reset keeps the excess (several spikes' worth too)", ["IF", "reset:subtract"]


@case
def case_threshold_exact(rng):
    g = _chain(("if", nir.IF(r=_f(1.0), v_threshold=_f(1.0), v_reset=_f(0.0))), dt=1.0, in_shape=(1,))
    x = np.array([0.5, 0.5, 0.25, 0.5, 0.5, 0.0])[:, None, None]
    return g, {"input": x}, "membrane lands exactly on the threshold: no spike (strict >)", ["IF", "reset:value", "exact-threshold"]


@case
def case_lif_value(rng):
    node = lif(2, tau=2.0, r=2.0, v_leak=_f(0.0, 0.5), v_th=1.0, v_reset=_f(0.0, 0.25))
    g = _chain(("lif", node), dt=1.0, in_shape=(2,))
    x = np.array([[1.0, 0.0], [1.0, 0.5], [0.0, 1.0], [2.0, 1.0], [0.5, 0.0], [1.0, 1.0]])[:, None, :]
    return g, {"input": x}, "LIF dt/tau = 1/2 (v_leak, v_reset change no spike here: see lif_leak_vreset_vinit)", ["LIF", "reset:value", "v_leak"]


@case
def case_lif_subtract(rng):
    node = lif(2, tau=2.0, r=1.0, v_leak=0.0, v_th=_f(0.5, 1.0), reset="subtract")
    g = _chain(("lif", node), dt=1.0, in_shape=(2,))
    x = np.array([[2.0, 3.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])[:, None, :]
    return g, {"input": x}, "LIF with subtract reset", ["LIF", "reset:subtract"]


@case
def case_li(rng):
    node = nir.LI(tau=_f(2.0, 4.0), r=_f(1.0, 2.0), v_leak=_f(0.0, 1.0))
    g = _chain(("li", node), dt=1.0, in_shape=(2,))
    x = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 0.0]])[:, None, :]
    return g, {"input": x}, "LI: leaky integrator, output is v", ["LI"]


@case
def case_cubalif_value(rng):
    node = nir.CubaLIF(tau_syn=_f(2.0, 2.0), tau_mem=_f(2.0, 4.0), r=_f(2.0, 4.0), v_leak=_f(0.0, 0.0),
                       v_threshold=_f(0.5, 0.5), v_reset=_f(0.0, 0.0), w_in=_f(1.0, 2.0))
    g = _chain(("cuba", node), dt=1.0, in_shape=(2,))
    x = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [2.0, 1.0], [0.0, 0.0], [0.0, 0.0]])[:, None, :]
    return g, {"input": x}, "CubaLIF: current first, voltage with the new current, reset to v_reset", ["CubaLIF", "reset:value"]


@case
def case_cubalif_subtract(rng):
    node = nir.CubaLIF(tau_syn=_f(2.0, 2.0), tau_mem=_f(2.0, 2.0), r=_f(2.0, 2.0), v_leak=_f(0.0, 0.0),
                       v_threshold=_f(0.5, 0.25), v_reset=_f(0.0, 0.0), w_in=_f(1.0, 1.0))
    g = _chain(("cuba", set_node_contract(node, reset="subtract")), dt=1.0, in_shape=(2,))
    x = np.array([[2.0, 1.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])[:, None, :]
    return g, {"input": x}, "CubaLIF with subtract reset", ["CubaLIF", "reset:subtract"]


@case
def case_delay(rng):
    g = _chain(("delay", nir.Delay(delay=_f(0.0, 1.0, 3.0))), dt=1.0, in_shape=(3,))
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])[:, None, :]
    return g, {"input": x}, "Delay by 0, 1 and 3 steps per element", ["Delay"]


@case
def case_recurrent(rng):
    nodes = {
        "input": nir.Input(input_type=A([1])),
        "fc": nir.Affine(weight=np.array([[1.0], [0.0]]), bias=_f(0.0, 0.0)),
        "lif": nir.IF(r=_f(1.0, 1.0), v_threshold=_f(0.5, 0.5), v_reset=_f(0.0, 0.0)),
        "rec": nir.Linear(weight=np.array([[0.0, 0.0], [1.0, 0.0]])),
        "output": nir.Output(output_type=A([2])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    g = _graph(nodes, edges, dt=1.0)
    x = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])[:, None, None]
    return g, {"input": x}, "recurrent edge carries last step's spikes: neuron 1 fires one step after neuron 0", ["IF", "Affine", "Linear", "cycle"]


@case
def case_conv_sumpool(rng):
    w = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    nodes = {
        "input": nir.Input(input_type=A([1, 3, 3])),
        "conv": nir.Conv2d(input_shape=(3, 3), weight=w, stride=1, padding=0, dilation=1, groups=1, bias=_f(0.0)),
        "if": nir.IF(r=np.ones((1, 2, 2)), v_threshold=np.full((1, 2, 2), 1.0), v_reset=np.zeros((1, 2, 2))),
        "pool": nir.SumPool2d(kernel_size=A([2, 2]), stride=A([2, 2]), padding=A([0, 0])),
        "output": nir.Output(output_type=A([1, 1, 1])),
    }
    g = _graph(nodes, [("input", "conv"), ("conv", "if"), ("if", "pool"), ("pool", "output")], dt=1.0)
    x = np.zeros((3, 1, 1, 3, 3))
    x[0, 0, 0] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    x[1, 0, 0] = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 1.0]]
    x[2, 0, 0] = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    return g, {"input": x}, "2x2 diagonal conv on 3x3, IF, 2x2 sum pool", ["Conv2d", "IF", "SumPool2d", "reset:value"]


# -- larger cases: random inputs and parameters, exercising shapes and combinations -----------------
@case
def case_i_integrator(rng):
    g = _chain(("fc", nir.Affine(weight=rng.normal(size=(4, 3)), bias=rng.normal(size=4) * 0.1)),
               ("i", nir.I(r=np.abs(rng.normal(size=4)) + 0.5)), dt=1e-3, in_shape=(3,))
    return g, {"input": spikes(rng, (30, 2, 3))}, "Affine into a perfect integrator I (output v)", ["Affine", "I"]


@case
def case_affine_lif(rng):
    g = _chain(("fc", nir.Affine(weight=rng.normal(size=(6, 5)) * 0.6, bias=rng.normal(size=6) * 0.05)),
               ("lif", lif(6, tau=5e-3, r=5.0, v_leak=0.0, v_th=0.3)), dt=1e-3, in_shape=(5,))
    return g, {"input": spikes(rng, (40, 3, 5))}, "dense layer into LIF, reset to zero", ["Affine", "LIF", "reset:value"]


@case
def case_affine_lif_subtract_vinit(rng):
    node = lif(5, tau=8e-3, r=4.0, v_leak=0.0, v_th=0.5, reset="subtract", v_init=rng.uniform(0, 0.5, size=5))
    g = _chain(("fc", nir.Affine(weight=rng.normal(size=(5, 4)) * 0.5, bias=np.zeros(5))), ("lif", node),
               dt=1e-3, in_shape=(4,))
    return g, {"input": spikes(rng, (40, 3, 4))}, "LIF with subtract reset and per-neuron v_init", ["Affine", "LIF", "reset:subtract", "v_init"]


@case
def case_if_vinit_half(rng):
    node = set_node_contract(nir.IF(r=np.full(4, 1000.0), v_threshold=np.full(4, 1.0), v_reset=np.zeros(4)),
                             reset="subtract", v_init=0.5)
    g = _chain(("fc", nir.Affine(weight=rng.uniform(0, 0.6, size=(4, 4)), bias=np.zeros(4))), ("if", node),
               dt=1e-3, in_shape=(4,))
    return g, {"input": rng.uniform(0, 1, size=(32, 2, 4))}, "IF with v_init = threshold/2 and analog input (ANN conversion style)", ["Affine", "IF", "reset:subtract", "v_init"]


@case
def case_cubalif_vinit(rng):
    n = 4
    node = nir.CubaLIF(tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.full(n, 10.0), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.2), v_reset=np.zeros(n), w_in=np.full(n, 2.0))
    set_node_contract(node, v_init=rng.uniform(0.1, 0.19, size=n), i_init=rng.uniform(-0.3, 0.3, size=n))
    g = _chain(("fc", nir.Linear(weight=rng.normal(size=(n, 3)))), ("cuba", node), dt=1e-3, in_shape=(3,))
    return g, {"input": spikes(rng, (40, 2, 3))}, "CubaLIF with v_init and i_init", ["Linear", "CubaLIF", "reset:value", "v_init", "i_init"]


@case
def case_cubali(rng):
    n = 3
    node = nir.CubaLI(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 1e-2), r=np.full(n, 2.0),
                      v_leak=np.zeros(n), w_in=np.ones(n))
    g = _chain(("fc", nir.Affine(weight=rng.normal(size=(n, 4)), bias=np.zeros(n))), ("cubali", node),
               dt=1e-3, in_shape=(4,))
    return g, {"input": spikes(rng, (30, 2, 4))}, "CubaLI readout (output is v)", ["Affine", "CubaLI"]


@case
def case_linear_scale_threshold(rng):
    g = _chain(("lin", nir.Linear(weight=rng.normal(size=(5, 4)))), ("scale", nir.Scale(scale=rng.uniform(0.5, 2, size=5))),
               ("thr", nir.Threshold(threshold=np.full(5, 0.3))), dt=1e-3, in_shape=(4,))
    return g, {"input": spikes(rng, (20, 3, 4))}, "Linear, Scale, stateless Threshold", ["Linear", "Scale", "Threshold"]


@case
def case_mlp_two_layers(rng):
    g = _chain(("fc1", nir.Affine(weight=rng.normal(size=(8, 6)) * 0.5, bias=np.zeros(8))),
               ("lif1", lif(8, tau=1e-2, r=10.0, v_th=0.5)),
               ("fc2", nir.Affine(weight=rng.normal(size=(3, 8)) * 0.5, bias=np.zeros(3))),
               ("li", nir.LI(tau=np.full(3, 2e-2), r=np.ones(3), v_leak=np.zeros(3))), dt=1e-3, in_shape=(6,))
    return g, {"input": spikes(rng, (40, 4, 6))}, "two-layer MLP with LIF hidden layer and LI readout", ["Affine", "LIF", "LI", "reset:value"]


@case
def case_recurrent_lif(rng):
    n = 6
    nodes = {
        "input": nir.Input(input_type=A([4])),
        "fc": nir.Affine(weight=rng.normal(size=(n, 4)) * 0.8, bias=np.zeros(n)),
        "lif": lif(n, tau=1e-2, r=10.0, v_th=0.5),
        "w_rec": nir.Affine(weight=rng.normal(size=(n, n)) * 0.3, bias=np.zeros(n)),
        "out": nir.Affine(weight=rng.normal(size=(2, n)), bias=np.zeros(2)),
        "li": nir.LI(tau=np.full(2, 2e-2), r=np.ones(2), v_leak=np.zeros(2)),
        "output": nir.Output(output_type=A([2])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "out"), ("out", "li"), ("li", "output")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (40, 3, 4))}, "recurrent LIF layer (RLeaky-style) with LI readout", ["Affine", "LIF", "LI", "cycle", "reset:value"]


@case
def case_nested_subgraph(rng):
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=A([5])),
            "lif": lif(5, tau=5e-3, r=5.0, v_th=0.4),
            "rec": nir.Linear(weight=rng.normal(size=(5, 5)) * 0.2),
            "output": nir.Output(output_type=A([5])),
        },
        edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
        metadata={},
        type_check=False,
    )
    nodes = {
        "input": nir.Input(input_type=A([3])),
        "fc1": nir.Affine(weight=rng.normal(size=(5, 3)), bias=np.zeros(5)),
        "hidden": inner,
        "fc2": nir.Affine(weight=rng.normal(size=(2, 5)), bias=np.zeros(2)),
        "lif2": lif(2, tau=5e-3, r=5.0, v_th=0.4),
        "output": nir.Output(output_type=A([2])),
    }
    edges = [("input", "fc1"), ("fc1", "hidden"), ("hidden", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (30, 2, 3))}, "nested subgraph (rockpool style) with a recurrent LIF inside", ["Affine", "Linear", "LIF", "cycle", "subgraph", "reset:value"]


@case
def case_multi_input_sum(rng):
    nodes = {
        "in_a": nir.Input(input_type=A([3])),
        "in_b": nir.Input(input_type=A([2])),
        "fa": nir.Affine(weight=rng.normal(size=(4, 3)), bias=np.zeros(4)),
        "fb": nir.Affine(weight=rng.normal(size=(4, 2)), bias=np.full(4, 0.1)),
        "lif": lif(4, tau=5e-3, r=5.0, v_th=0.5),
        "output": nir.Output(output_type=A([4])),
    }
    edges = [("in_a", "fa"), ("in_b", "fb"), ("fa", "lif"), ("fb", "lif"), ("lif", "output")]
    g = _graph(nodes, edges, dt=1e-3)
    inputs = {"in_a": spikes(rng, (30, 2, 3)), "in_b": spikes(rng, (30, 2, 2))}
    return g, inputs, "two inputs summed into one LIF (fan-in sums)", ["Affine", "LIF", "multi-input", "reset:value"]


@case
def case_multi_output(rng):
    nodes = {
        "input": nir.Input(input_type=A([4])),
        "fc": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
        "lif": lif(3, tau=5e-3, r=5.0, v_th=0.5),
        "li": nir.LI(tau=np.full(3, 1e-2), r=np.ones(3), v_leak=np.zeros(3)),
        "spikes": nir.Output(output_type=A([3])),
        "membrane": nir.Output(output_type=A([3])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("fc", "li"), ("lif", "spikes"), ("li", "membrane")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (30, 2, 4))}, "one input, a spiking and a membrane Output", ["Affine", "LIF", "LI", "multi-output", "reset:value"]


@case
def case_conv_lif_sumpool_affine(rng):
    nodes = {
        "input": nir.Input(input_type=A([1, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(size=(4, 1, 3, 3)) * 0.7, stride=1, padding=1,
                           dilation=1, groups=1, bias=rng.normal(size=4) * 0.05),
        "lif1": lif(1, tau=5e-3, r=5.0, v_th=0.5),
        "pool": nir.SumPool2d(kernel_size=A([2, 2]), stride=A([2, 2]), padding=A([0, 0])),
        "flat": nir.Flatten(input_type={"input": A([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(size=(5, 64)) * 0.3, bias=np.zeros(5)),
        "lif2": lif(5, tau=5e-3, r=5.0, v_th=0.5),
        "output": nir.Output(output_type=A([5])),
    }
    # lif1's parameters are per-channel-broadcast scalars: expand them to the feature-map shape.
    nodes["lif1"] = lif(1, tau=5e-3, r=5.0, v_th=0.5)
    for p in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
        setattr(nodes["lif1"], p, np.full((4, 8, 8), float(getattr(nodes["lif1"], p)[0])))
    names = ["input", "conv", "lif1", "pool", "flat", "fc", "lif2", "output"]
    g = _graph(nodes, list(zip(names[:-1], names[1:])), dt=1e-3)
    return g, {"input": spikes(rng, (25, 2, 1, 8, 8))}, "conv (padding 1) + LIF + sum pool + flatten + dense + LIF", ["Conv2d", "LIF", "SumPool2d", "Flatten", "Affine", "reset:value"]


@case
def case_conv_groups_stride_dilation(rng):
    shape = (4, 4, 4)
    nodes = {
        "input": nir.Input(input_type=A([2, 9, 9])),
        "conv": nir.Conv2d(input_shape=(9, 9), weight=rng.normal(size=(4, 1, 3, 3)), stride=A([2, 2]),
                           padding=A([1, 1]), dilation=A([2, 2]), groups=2, bias=np.zeros(4)),
        "if": set_node_contract(nir.IF(r=np.full(shape, 200.0), v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape)),
                                reset="subtract"),
        "output": nir.Output(output_type=A(shape)),
    }
    g = _graph(nodes, [("input", "conv"), ("conv", "if"), ("if", "output")], dt=1e-3)
    return g, {"input": spikes(rng, (20, 2, 2, 9, 9))}, "grouped conv with stride 2, dilation 2, padding 1", ["Conv2d", "IF", "reset:subtract", "conv-groups"]


@case
def case_conv_avgpool(rng):
    shape = (3, 6, 6)
    nodes = {
        "input": nir.Input(input_type=A([2, 6, 6])),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(size=(3, 2, 3, 3)) * 0.5, stride=1, padding="same",
                           dilation=1, groups=1, bias=np.zeros(3)),
        "lif": lif(1, tau=5e-3, r=5.0, v_th=0.4),
        "pool": nir.AvgPool2d(kernel_size=A([3, 3]), stride=A([2, 2]), padding=A([1, 1])),
        "li": nir.LI(tau=np.full((3, 3, 3), 1e-2), r=np.ones((3, 3, 3)), v_leak=np.zeros((3, 3, 3))),
        "output": nir.Output(output_type=A([3, 3, 3])),
    }
    for p in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
        setattr(nodes["lif"], p, np.full(shape, float(getattr(nodes["lif"], p)[0])))
    names = ["input", "conv", "lif", "pool", "li", "output"]
    g = _graph(nodes, list(zip(names[:-1], names[1:])), dt=1e-3)
    return g, {"input": spikes(rng, (20, 2, 2, 6, 6))}, "'same' conv, LIF, padded 3x3/2 average pool, LI", ["Conv2d", "LIF", "AvgPool2d", "LI", "reset:value"]


@case
def case_conv1d(rng):
    shape = (3, 5)
    nodes = {
        "input": nir.Input(input_type=A([2, 10])),
        "conv": nir.Conv1d(input_shape=10, weight=rng.normal(size=(3, 2, 3)), stride=2, padding=1, dilation=1,
                           groups=1, bias=rng.normal(size=3) * 0.1),
        "lif": nir.LIF(tau=np.full(shape, 5e-3), r=np.full(shape, 5.0), v_leak=np.zeros(shape),
                       v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape)),
        "output": nir.Output(output_type=A(shape)),
    }
    g = _graph(nodes, [("input", "conv"), ("conv", "lif"), ("lif", "output")], dt=1e-3)
    return g, {"input": spikes(rng, (20, 2, 2, 10))}, "1-d conv with stride 2 into LIF", ["Conv1d", "LIF", "reset:value"]


@case
def case_delay_if(rng):
    g = _chain(("fc", nir.Affine(weight=rng.uniform(0, 1, size=(4, 3)), bias=np.zeros(4))),
               ("delay", nir.Delay(delay=np.array([0.0, 1e-3, 2e-3, 5e-3]))),
               ("if", nir.IF(r=np.full(4, 1000.0), v_threshold=np.full(4, 1.0), v_reset=np.zeros(4))), dt=1e-3, in_shape=(3,))
    return g, {"input": spikes(rng, (25, 2, 3))}, "per-neuron axonal delays (0-5 steps) before IF", ["Affine", "Delay", "IF", "reset:value"]


# -- chains a Loihi-style CUBA core can run: no bias, no leak offset, reset to zero, spiking output ----
@case
def case_lif_chain(rng):
    g = _chain(("w1", nir.Linear(weight=rng.uniform(-0.3, 1.0, size=(8, 6)))),
               ("lif1", lif(8, tau=1e-2, r=10.0, v_th=1.0)),
               ("w2", nir.Linear(weight=rng.uniform(-0.3, 1.0, size=(4, 8)))),
               ("lif2", lif(4, tau=2e-2, r=20.0, v_th=1.0)), dt=1e-3, in_shape=(6,))
    return g, {"input": spikes(rng, (40, 3, 6))}, "two LIF layers without biases (Loihi-compatible chain)", ["Linear", "LIF", "reset:value", "loihi"]


@case
def case_cubalif_chain(rng):
    def cuba(n, tau_syn, tau_mem):
        return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.full(n, 10.0),
                           v_leak=np.zeros(n), v_threshold=np.full(n, 0.5), v_reset=np.zeros(n), w_in=np.ones(n))
    g = _chain(("w1", nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(7, 5)))), ("cuba1", cuba(7, 4e-3, 1e-2)),
               ("w2", nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(3, 7)))), ("cuba2", cuba(3, 5e-3, 2e-2)),
               dt=1e-3, in_shape=(5,))
    return g, {"input": spikes(rng, (40, 3, 5))}, "two CubaLIF layers without biases (Loihi-compatible chain)", ["Linear", "CubaLIF", "reset:value", "loihi"]


@case
def case_if_chain(rng):
    g = _chain(("w1", nir.Linear(weight=rng.uniform(-0.2, 0.8, size=(6, 4)))),
               ("if1", nir.IF(r=np.full(6, 1000.0), v_threshold=np.full(6, 1.0), v_reset=np.zeros(6))),
               ("w2", nir.Linear(weight=rng.uniform(-0.2, 0.8, size=(3, 6)))),
               ("if2", nir.IF(r=np.full(3, 1000.0), v_threshold=np.full(3, 1.0), v_reset=np.zeros(3))),
               dt=1e-3, in_shape=(4,))
    return g, {"input": spikes(rng, (40, 3, 4))}, "two IF layers without biases (Loihi-compatible chain)", ["Linear", "IF", "reset:value", "loihi"]


# -- cases that make every rule observable (python -m snnx.conformance.mutants kills a mutant per rule) --
def _u(rng: np.random.Generator, lo: float, hi: float, n) -> np.ndarray:
    return rng.uniform(lo, hi, size=n)


@case
def case_if_vreset_vinit(rng):
    n = 4
    node = set_node_contract(nir.IF(r=_u(rng, 500, 1500, n), v_threshold=_u(rng, 0.5, 1.0, n),
                                    v_reset=_f(0.4, -0.3, 0.2, -0.6)), v_init=_u(rng, -0.2, 0.4, n))
    g = _chain(("fc", nir.Linear(weight=rng.uniform(-0.3, 1.0, size=(n, 3)))), ("if", node), dt=1e-3, in_shape=(3,))
    return g, {"input": rng.uniform(0, 1, size=(40, 2, 3))}, "IF reset to non-zero v_reset (both signs), v_init, analog input", ["Linear", "IF", "reset:value", "v_init", "v_reset"]


@case
def case_lif_leak_vreset_vinit(rng):
    n = 4
    node = set_node_contract(
        nir.LIF(tau=_u(rng, 4e-3, 2e-2, n), r=_u(rng, 5, 15, n), v_leak=_f(0.3, -0.2, 0.6, 0.1),
                v_threshold=_u(rng, 0.5, 1.0, n), v_reset=_f(0.25, -0.25, 0.1, -0.5)),
        v_init=_u(rng, -0.3, 0.5, n))
    g = _chain(("fc", nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(n, 3)))), ("lif", node), dt=1e-3, in_shape=(3,))
    return g, {"input": rng.uniform(0, 1, size=(50, 2, 3))}, "LIF with v_leak of both signs, non-zero v_reset, v_init", ["Linear", "LIF", "reset:value", "v_init", "v_reset", "v_leak"]


@case
def case_cubalif_full(rng):
    n = 4
    node = nir.CubaLIF(tau_syn=_u(rng, 2e-3, 5e-3, n), tau_mem=_u(rng, 8e-3, 2e-2, n), r=_u(rng, 5, 15, n),
                       v_leak=_f(0.2, -0.1, 0.4, 0.0), v_threshold=_u(rng, 0.3, 0.6, n),
                       v_reset=_f(0.1, -0.2, 0.05, -0.4), w_in=_u(rng, 0.5, 2.0, n))
    set_node_contract(node, v_init=_u(rng, -0.2, 0.3, n), i_init=_u(rng, -0.5, 0.5, n))
    g = _chain(("fc", nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(n, 3)))), ("cuba", node), dt=1e-3, in_shape=(3,))
    return g, {"input": rng.uniform(0, 1, size=(50, 2, 3))}, "CubaLIF: v_leak, non-zero v_reset, w_in, v_init and i_init all matter", ["Linear", "CubaLIF", "reset:value", "v_init", "i_init", "v_reset", "v_leak"]


@case
def case_cubali_full(rng):
    n = 3
    node = nir.CubaLI(tau_syn=_u(rng, 2e-3, 5e-3, n), tau_mem=_u(rng, 8e-3, 2e-2, n), r=_u(rng, 1, 3, n),
                      v_leak=_f(0.2, -0.3, 0.1), w_in=_u(rng, 0.5, 2.0, n))
    set_node_contract(node, v_init=_u(rng, -0.5, 0.5, n), i_init=_u(rng, -0.5, 0.5, n))
    g = _chain(("fc", nir.Linear(weight=rng.normal(size=(n, 3)))), ("cubali", node), dt=1e-3, in_shape=(3,))
    return g, {"input": spikes(rng, (30, 2, 3))}, "CubaLI with distinct taus, v_leak, w_in, v_init and i_init", ["Linear", "CubaLI", "v_init", "i_init", "v_leak"]


@case
def case_li_i_vinit(rng):
    n = 3
    li = set_node_contract(nir.LI(tau=_u(rng, 5e-3, 2e-2, n), r=_u(rng, 1, 2, n), v_leak=_f(0.1, 0.0, -0.2)),
                           v_init=_u(rng, -1, 1, n))
    g = _chain(("fc", nir.Linear(weight=rng.normal(size=(n, 2)))), ("li", li), dt=1e-3, in_shape=(2,))
    return g, {"input": spikes(rng, (25, 2, 2))}, "LI with v_init (the state before the first step)", ["Linear", "LI", "v_init"]


@case
def case_i_vinit(rng):
    n = 3
    node = set_node_contract(nir.I(r=_u(rng, 0.5, 2, n)), v_init=_f(0.5, -1.0, 2.0))
    g = _chain(("fc", nir.Linear(weight=rng.normal(size=(n, 2)))), ("i", node), dt=1e-3, in_shape=(2,))
    return g, {"input": spikes(rng, (20, 2, 2))}, "perfect integrator I with v_init", ["Linear", "I", "v_init"]


@case
def case_threshold_node_exact(rng):
    g = _chain(("thr", nir.Threshold(threshold=_f(0.5, 1.0, -0.25))), dt=1.0, in_shape=(3,))
    x = np.array([[0.5, 1.0, -0.25], [0.75, 0.5, 0.0], [0.25, 1.0, -0.5], [0.5, 1.25, -0.25]])[:, None, :]
    return g, {"input": x}, "stateless Threshold with inputs exactly at the threshold: no spike (strict >)", ["Threshold", "exact-threshold"]


@case
def case_sumpool_padded(rng):
    nodes = {
        "input": nir.Input(input_type=A([2, 5, 5])),
        "pool": nir.SumPool2d(kernel_size=A([3, 3]), stride=A([2, 2]), padding=A([1, 1])),
        "if": set_node_contract(nir.IF(r=np.full((2, 3, 3), 1000.0), v_threshold=np.full((2, 3, 3), 1.5),
                                       v_reset=np.zeros((2, 3, 3))), reset="subtract"),
        "output": nir.Output(output_type=A([2, 3, 3])),
    }
    g = _graph(nodes, [("input", "pool"), ("pool", "if"), ("if", "output")], dt=1e-3)
    return g, {"input": spikes(rng, (20, 2, 2, 5, 5))}, "zero-padded 3x3/2 sum pool (padding on both sides) into IF", ["SumPool2d", "IF", "reset:subtract"]


@case
def case_conv_same_even_kernel(rng):
    shape = (2, 5, 5)
    nodes = {
        "input": nir.Input(input_type=A([1, 5, 5])),
        "conv": nir.Conv2d(input_shape=(5, 5), weight=rng.uniform(-0.2, 1.0, size=(2, 1, 2, 2)), stride=1,
                           padding="same", dilation=1, groups=1, bias=np.zeros(2)),
        "if": set_node_contract(nir.IF(r=np.full(shape, 1000.0), v_threshold=np.full(shape, 1.0),
                                       v_reset=np.zeros(shape)), reset="subtract"),
        "output": nir.Output(output_type=A(shape)),
    }
    g = _graph(nodes, [("input", "conv"), ("conv", "if"), ("if", "output")], dt=1e-3)
    return g, {"input": spikes(rng, (20, 2, 1, 5, 5))}, "padding='same' with a 2x2 kernel: the odd padding goes after (as torch)", ["Conv2d", "IF", "reset:subtract", "conv-same-even"]


@case
def case_delay_fractional(rng):
    g = _chain(("delay", nir.Delay(delay=np.array([1.4e-3, 1.6e-3, 2.6e-3, 0.3e-3]))), dt=1e-3, in_shape=(4,))
    x = np.arange(1.0, 1.0 + 6 * 4).reshape(6, 1, 4)
    return g, {"input": x}, "delays of 1.4, 1.6, 2.6 and 0.3 steps round to 1, 2, 3 and 0 steps", ["Delay", "delay-rounding"]


@case
def case_cycle_two_entries(rng):
    n = 3
    nodes = {
        "input": nir.Input(input_type=A([2])),
        "a": lif(n, tau=5e-3, r=5.0, v_th=0.4),
        "b": lif(n, tau=5e-3, r=5.0, v_th=0.4),
        "in_a": nir.Linear(weight=rng.uniform(0, 1.5, size=(n, 2))),
        "in_b": nir.Linear(weight=rng.uniform(0, 1.5, size=(n, 2))),
        "ab": nir.Linear(weight=rng.uniform(-0.5, 1.0, size=(n, n))),
        "ba": nir.Linear(weight=rng.uniform(-0.5, 1.0, size=(n, n))),
        "out_a": nir.Output(output_type=A([n])),
        "out_b": nir.Output(output_type=A([n])),
    }
    edges = [("input", "in_a"), ("input", "in_b"), ("in_a", "a"), ("in_b", "b"), ("a", "ab"), ("ab", "b"),
             ("b", "ba"), ("ba", "a"), ("a", "out_a"), ("b", "out_b")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (30, 2, 2))}, "a cycle entered at two nodes equally far from the input: both ab -> b and ba -> a are delayed", ["Linear", "LIF", "cycle", "reset:value", "multi-output"]


@case
def case_cycle_nearest_entry(rng):
    n = 3
    nodes = {
        "input": nir.Input(input_type=A([2])),
        "p": nir.Linear(weight=rng.uniform(0, 1.5, size=(n, 2))),
        "q": lif(n, tau=5e-3, r=5.0, v_th=0.3),
        "r": nir.Linear(weight=rng.uniform(0, 1.5, size=(n, n))),
        "x": lif(n, tau=5e-3, r=5.0, v_th=0.4),
        "y": lif(n, tau=5e-3, r=5.0, v_th=0.4),
        "w_in": nir.Linear(weight=rng.uniform(0, 1.5, size=(n, 2))),
        "xy": nir.Linear(weight=rng.uniform(-0.5, 1.0, size=(n, n))),
        "yx": nir.Linear(weight=rng.uniform(-0.5, 1.0, size=(n, n))),
        "out_x": nir.Output(output_type=A([n])),
        "out_y": nir.Output(output_type=A([n])),
    }
    # y is 2 edges from the input, x 4 (input -> p -> q -> r -> x): the cycle x -> xy -> y -> yx -> x is
    # entered at y, so only xy -> y is delayed; a name-ordered DFS (p before w_in) would delay yx -> x.
    edges = [("input", "p"), ("p", "q"), ("q", "r"), ("r", "x"), ("input", "w_in"), ("w_in", "y"), ("x", "xy"),
             ("xy", "y"), ("y", "yx"), ("yx", "x"), ("x", "out_x"), ("y", "out_y")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (30, 2, 2))}, "a cycle entered at its node nearest the input (only xy -> y is delayed), whatever the names", ["Linear", "LIF", "cycle", "reset:value", "multi-output"]


@case
def case_skip_connection(rng):
    n = 4
    nodes = {
        "input": nir.Input(input_type=A([3])),
        "fc1": nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(n, 3))),
        "lif1": lif(n, tau=5e-3, r=5.0, v_th=0.4),
        "fc2": nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(n, n))),
        "skip": nir.Linear(weight=rng.uniform(-0.2, 1.0, size=(n, 3))),
        "lif2": lif(n, tau=5e-3, r=5.0, v_th=0.6),
        "output": nir.Output(output_type=A([n])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("input", "skip"), ("skip", "lif2"),
             ("lif2", "output")]
    g = _graph(nodes, edges, dt=1e-3)
    return g, {"input": spikes(rng, (30, 2, 3))}, "a skip connection (residual style): no cycle, so no edge is delayed although fc2 is farther from the input than lif2", ["Linear", "LIF", "reset:value", "multi-input"]


# -- signed spikes (contract version 2, section 4): every number below is a dyadic rational, so the
# float32 backends compute exactly what the float64 reference does -----------------------------------
@case
def case_if_signed(rng):
    # n0 (thr 1, v_init 0.5): v = 1.5 +1, 1.5 +1, -0.5 -1, 0.0 -1 (v <= 0 is not strict), 0.0 nothing
    #    (n = 0), -1, -0.5, -0.5 nothing (n = 0: never takes back more than it fired).
    # n1 (thr 0.5, v_init 0): 0.5 at threshold: nothing (v > 0 too), 0.75 +1, 0.75 +1, -0.5 -1, -0.5 -1,
    #    0.25, 0.0 (n = 0), 0.5 at threshold again.
    node = nir.IF(r=_f(1.0, 1.0), v_threshold=_f(1.0, 0.5), v_reset=_f(0.0, 0.0))
    set_node_contract(node, reset="subtract", v_init=_f(0.5, 0.0), signed=True)
    g = _chain(("if", node), dt=1.0, in_shape=(2,))
    x = np.array([[1.0, 0.5], [1.0, 0.25], [-1.0, 0.5], [-0.5, -0.75], [-1.0, -0.5], [-1.0, 0.25], [0.5, -0.25],
                  [0.0, 0.5]])[:, None, :]
    return g, {"input": x}, "signed IF: -1 where v <= 0 and the net count is positive (hand values in the source)", ["IF", "reset:subtract", "signed"]


@case
def case_lif_signed(rng):
    # n0: v <- v/2 + x (dt/tau = 1/2, r = 2): 1.25 +1, 1.125 +1, -0.9375 -1, -0.96875 -1, 0.515625, -0.7421875.
    # n1: v <- v/2 - 1/4 + x: 0.625 +1, then with no input -0.1875 -1 (the leak took it below 0), -0.09375
    #     nothing (n = 0), 0.203125, 0.3515625, -0.07421875.
    node = lif(2, tau=2.0, r=2.0, v_leak=_f(0.0, -0.5), v_th=_f(1.0, 0.5), reset="subtract", v_init=_f(0.5, 0.25),
               signed=True)
    g = _chain(("lif", node), dt=1.0, in_shape=(2,))
    x = np.array([[1.0, 0.75], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.5], [0.5, 0.5], [-1.0, 0.0]])[:, None, :]
    return g, {"input": x}, "signed LIF (v_leak leaks a neuron below 0: it takes back a spike without negative input)", ["LIF", "reset:subtract", "v_leak", "signed"]


@case
def case_cubalif_signed(rng):
    node = nir.CubaLIF(tau_syn=_f(2.0, 2.0), tau_mem=_f(2.0, 4.0), r=_f(2.0, 2.0), v_leak=_f(0.0, 0.0),
                       v_threshold=_f(0.5, 0.25), v_reset=_f(0.0, 0.0), w_in=_f(1.0, 2.0))
    g = _chain(("cuba", set_node_contract(node, reset="subtract", signed=True)), dt=1.0, in_shape=(2,))
    x = np.array([[2.0, 1.0], [1.0, 0.0], [-2.0, -1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 0.0],
                  [-1.0, -1.0]])[:, None, :]
    return g, {"input": x}, "signed CubaLIF: the current keeps driving the membrane below 0 after the input turns", ["CubaLIF", "reset:subtract", "signed"]


@case
def case_mlp_signed(rng):
    # Weights in eighths, inputs in quarters: the sums are exact in float32 too. The hidden layer's -1
    # spikes subtract their weights downstream (section 4: consumers receive s like any spike).
    def signed_if(n: int, thr: float) -> nir.IF:
        node = nir.IF(r=np.ones(n), v_threshold=np.full(n, thr), v_reset=np.zeros(n))
        return set_node_contract(node, reset="subtract", v_init=np.full(n, thr / 2), signed=True)

    g = _chain(("fc1", nir.Affine(weight=rng.integers(-8, 9, size=(6, 4)) / 8, bias=rng.integers(-2, 3, size=6) / 8)),
               ("if1", signed_if(6, 1.0)),
               ("fc2", nir.Linear(weight=rng.integers(-8, 9, size=(3, 6)) / 8)),
               ("if2", signed_if(3, 0.5)), dt=1.0, in_shape=(4,))
    x = rng.integers(-4, 5, size=(24, 3, 4)) / 4
    return g, {"input": x}, "two signed IF layers (convert --signed style, v_init = thr/2); -1 spikes travel to the next layer", ["Affine", "Linear", "IF", "reset:subtract", "signed"]


def build(directory: Path = CASES_DIR) -> list[str]:
    """Write every case to ``directory``; returns the case names."""
    directory.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, fn in sorted(CASES.items()):
        # Seeded by name, so adding a case never changes another case's data.
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        graph, inputs, description, features = fn(rng)
        validate(graph)
        golden = simulate(graph, inputs)
        save(graph, directory / f"{name}.nir")
        dt = float(graph.metadata["snnx"]["dt"])
        save_traces(directory / f"{name}.input.nird", inputs, dt)
        save_traces(directory / f"{name}.golden.nird", golden, dt)
        index[name] = {"description": description, "features": features}
    (directory / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return sorted(index)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CASES_DIR
    names = build(target)
    print(f"wrote {len(names)} conformance cases to {target}")
