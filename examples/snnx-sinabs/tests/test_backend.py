"""The sinabs backend as a user meets it: discovery, lowering, the CLI, training and export."""

from __future__ import annotations

import subprocess
import sys

import nir
import numpy as np
import pytest
import sinabs.layers as sl
import torch

import snnx
from snnx.errors import UnsupportedNodeError
from snnx.ir.semantics import set_graph_contract, set_node_contract
from snnx.plugins import load_plugins


def single(neuron: nir.NIRNode, n: int, dt: float = 1e-4, reset: str = "value", v_init=None) -> nir.NIRGraph:
    set_node_contract(neuron, reset=reset if isinstance(neuron, (nir.IF, nir.LIF, nir.CubaLIF)) else None,
                      v_init=v_init)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "neuron": neuron,
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "neuron"), ("neuron", "output")],
        type_check=False,
    )
    return set_graph_contract(graph, dt=dt)


def test_registered_through_the_entry_point_only():
    info = load_plugins().plugins["sinabs"]
    assert info.error is None
    assert info.source.startswith("entry point snnx_sinabs.plugin")
    assert info.backends == ["sinabs"]
    assert snnx.get_backend("sinabs").plugin == "sinabs"


def test_neurons_are_sinabs_layers():
    lif = nir.LIF(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    model = snnx.lower(single(lif, 3), to="sinabs")
    layer = model.layer("neuron").layer
    assert type(layer) is sl.LIF
    assert layer.norm_input is False


def test_membrane_exactly_at_threshold_does_not_spike():
    # dt*r*x = 0.25 per step: v reaches exactly 1.0 at step 4 (no spike, strict >) and 1.25 at step 5.
    node = nir.IF(r=np.full(1, 2500.0), v_threshold=np.ones(1), v_reset=np.zeros(1))
    graph = single(node, 1)
    x = np.ones((6, 1, 1))
    want = snnx.simulate(graph, x)["output"][:, 0, 0]
    got = snnx.run(graph, x, backend="sinabs")["output"][:, 0, 0]
    np.testing.assert_array_equal(want, [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(got, want)


def test_non_zero_v_reset_with_leak_matches_reference():
    rng = np.random.default_rng(1)
    n = 8
    node = nir.LIF(tau=rng.uniform(5e-4, 2e-3, n), r=rng.uniform(0.5, 2.0, n), v_leak=rng.uniform(-0.2, 0.2, n),
                   v_threshold=rng.uniform(0.5, 1.0, n), v_reset=rng.uniform(-0.5, 0.2, n))
    graph = single(node, n, v_init=rng.uniform(-0.3, 0.3, n))
    x = rng.uniform(-2, 12, (200, 3, n))
    want = snnx.simulate(graph, x)["output"]
    got = snnx.run(graph, x, backend="sinabs")["output"]
    assert want.sum() > 50
    np.testing.assert_array_equal(got, want)


def test_refusal_names_the_node_and_the_reason():
    node = nir.CubaLIF(tau_syn=np.full(2, 5e-4), tau_mem=np.full(2, 1e-3), r=np.ones(2), v_leak=np.full(2, 0.1),
                       v_threshold=np.ones(2), v_reset=np.zeros(2), w_in=np.ones(2))
    with pytest.raises(UnsupportedNodeError, match=r"'sinabs'.*node 'neuron' \(CubaLIF\): v_leak - v_reset"):
        snnx.lower(single(node, 2), to="sinabs")


def test_unknown_lowering_option_is_an_error():
    node = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    with pytest.raises(snnx.SnnxError, match="no lowering options, got surrogate"):
        snnx.lower(single(node, 1), to="sinabs", surrogate="atan")


def test_trained_decay_is_exported_and_reproduced():
    n = 4
    node = nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 2.0), v_leak=np.full(n, 0.1),
                   v_threshold=np.ones(n), v_reset=np.full(n, -0.1))
    model = snnx.lower(single(node, n), to="sinabs")
    layer = model.layer("neuron").layer
    with torch.no_grad():  # what an optimiser step on the trainable decay does
        layer.alpha_mem.mul_(0.97)
    x = np.random.default_rng(0).uniform(0, 8, (100, 2, n))
    trained = snnx.get_backend("sinabs").run(model, {"input": x})["output"]
    raised = snnx.raise_(model)
    assert not np.allclose(raised.nodes["neuron"].tau, 1e-3)
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], trained)


def test_untrained_model_exports_the_original_parameters_exactly():
    node = nir.LI(tau=np.array([3e-4, 7e-4]), r=np.array([1.0, 0.5]), v_leak=np.array([0.0, 0.2]))
    raised = snnx.raise_(snnx.lower(single(node, 2), to="sinabs"))
    for key in ("tau", "r", "v_leak"):
        np.testing.assert_array_equal(getattr(raised.nodes["neuron"], key), getattr(node, key))


def test_cli_lower_then_raise(tmp_path):
    node = nir.LIF(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    snnx.save(single(node, 3, reset="subtract"), tmp_path / "model.nir")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "snnx.cli", *args], check=False, capture_output=True, text=True, cwd=tmp_path
        )

    lowered = cli("lower", "model.nir", "--to", "sinabs")
    assert lowered.returncode == 0, lowered.stderr
    assert "sinabs GraphModule" in lowered.stdout and (tmp_path / "model.pt").is_file()
    raised = cli("raise", "model.pt", "--from", "sinabs", "-o", "back.nir")
    assert raised.returncode == 0, raised.stderr
    back = snnx.load(tmp_path / "back.nir")
    assert back.nodes["neuron"].metadata["snnx"]["reset"] == "subtract"


def test_lowered_model_trains_through_sinabs_surrogate_gradients():
    """Backprop reaches the synaptic weights and Sinabs' decay, and a few steps reduce the loss."""
    rng = np.random.default_rng(3)
    n_in, n = 5, 4
    lif = nir.LIF(tau=np.full(n, 1e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n),
                  v_reset=np.zeros(n))
    set_node_contract(lif, reset="subtract")
    graph = set_graph_contract(
        nir.NIRGraph(
            nodes={"input": nir.Input(input_type=np.array([n_in])),
                   "fc": nir.Affine(weight=rng.normal(0, 2.0, (n, n_in)), bias=np.zeros(n)),
                   "lif": lif, "output": nir.Output(output_type=np.array([n]))},
            edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
            type_check=False,
        ),
        dt=1e-4,
    )
    model = snnx.lower(graph, to="sinabs")
    x = torch.as_tensor(rng.uniform(0, 20, (30, 8, n_in)), dtype=torch.float32)
    target = torch.full((n,), 0.3)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = ((model(x).mean(dim=(0, 1)) - target) ** 2).sum()
        loss.backward()
        losses.append(float(loss.detach()))
        optimiser.step()
    fc = model.layer("fc")
    assert fc.weight.grad is not None and float(fc.weight.grad.abs().sum()) > 0
    assert model.layer("lif").layer.alpha_mem.grad is not None
    assert losses[-1] < 0.5 * losses[0]
