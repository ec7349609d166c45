"""The snntorch backend: snnTorch's own neurons, folded to the contract, spike for spike.

Every neuron type, both reset modes, v_reset != 0 and v_init, a cycle, conv + pool; gradients; raise;
save/load; the CLI; and (slow) a short training run on scikit-learn digits.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nir
import numpy as np
import pytest

torch = pytest.importorskip("torch")
snntorch = pytest.importorskip("snntorch")

import snnx  # noqa: E402
from snnx.errors import SnnxError, UnsupportedNodeError  # noqa: E402
from snnx.ir.semantics import set_graph_contract, set_node_contract  # noqa: E402

RNG = np.random.default_rng(7)
N = 6
BACKEND = snnx.get_backend("snntorch")


def full(value, n=N):
    return np.full(n, value, dtype=np.float64)


def make_neuron(kind: str, reset: str, v_init: float, v_reset: float) -> nir.NIRNode:
    common = {"r": full(300.0 if kind in ("IF", "I") else 3.0)}  # about 0.3-0.75 of the input per step
    if kind in ("LIF", "LI"):
        common.update(tau=full(4e-3), v_leak=full(0.1))
    if kind in ("CubaLIF", "CubaLI"):
        common.update(tau_syn=full(2e-3), tau_mem=full(5e-3), v_leak=full(0.1), w_in=full(1.5))
    if kind in ("IF", "LIF", "CubaLIF"):
        common.update(v_threshold=full(1.0), v_reset=full(v_reset))
    node = getattr(nir, kind)(**common)
    spiking = kind in ("IF", "LIF", "CubaLIF")
    i_init = full(0.4) if kind.startswith("Cuba") and v_init else None
    return set_node_contract(node, reset=reset if spiking else None, v_init=full(v_init), i_init=i_init)


def dense_graph(neuron: nir.NIRNode, n_in: int = 4, dt: float = 1e-3) -> nir.NIRGraph:
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n_in])),
            "fc": nir.Affine(weight=RNG.normal(size=(N, n_in)), bias=RNG.normal(size=N) * 0.2),
            "neuron": neuron,
            "output": nir.Output(output_type=np.array([N])),
        },
        edges=[("input", "fc"), ("fc", "neuron"), ("neuron", "output")],
        metadata={},
        type_check=False,
    )
    return set_graph_contract(g, dt=dt)


def run(model, x) -> np.ndarray:
    (out,) = BACKEND.run(model, {"input": x}).values()
    return out


def assert_conforms(graph, x, spiking):
    (ref,) = snnx.simulate(graph, x).values()
    got32 = run(snnx.lower(graph, to="snntorch"), x)
    got64 = run(snnx.lower(graph, to="snntorch", dtype="float64"), x)
    if spiking:
        assert 0 < ref.sum() < ref.size, "the case must both spike and stay silent somewhere"
        np.testing.assert_array_equal(got32, ref)
        np.testing.assert_array_equal(got64, ref)
    else:
        np.testing.assert_allclose(got32, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got64, ref, rtol=1e-10, atol=1e-10)


NEURON_CASES = [
    (kind, reset, v_init, v_reset)
    for kind in ("IF", "LIF", "CubaLIF")
    for reset in ("value", "subtract")
    for v_init, v_reset in ((0.0, 0.0), (1.7, -0.3))  # v_init above threshold is not spike-checked
] + [(kind, None, v_init, 0.0) for kind in ("I", "LI", "CubaLI") for v_init in (0.0, 0.6)]


@pytest.mark.parametrize(("kind", "reset", "v_init", "v_reset"), NEURON_CASES)
def test_neuron_matches_reference(kind, reset, v_init, v_reset):
    graph = dense_graph(make_neuron(kind, reset or "value", v_init, v_reset))
    x = RNG.uniform(-0.5, 2.0, size=(60, 3, 4))
    assert_conforms(graph, x, spiking=kind in ("IF", "LIF", "CubaLIF"))


@pytest.mark.parametrize(("kind", "cls"), [("LIF", "Leaky"), ("IF", "Leaky"), ("LI", "Leaky"), ("I", "Leaky"),
                                           ("CubaLIF", "Synaptic"), ("CubaLI", "Synaptic")])
def test_lowered_neurons_are_snntorch_classes(kind, cls):
    model = snnx.lower(dense_graph(make_neuron(kind, "value", 0.0, 0.0)), to="snntorch")
    assert isinstance(model.layer("neuron").neuron, getattr(snntorch, cls))
    assert isinstance(model.layer("fc"), torch.nn.Linear)


def test_recurrent_cycle_with_delay_matches_reference():
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "w_in": nir.Affine(weight=RNG.normal(size=(N, 3)) * 2, bias=np.zeros(N)),
        "lif": make_neuron("LIF", "subtract", 0.3, 0.0),
        "w_rec": nir.Linear(weight=RNG.normal(size=(N, N))),
        "delay": nir.Delay(delay=np.array([0.0, 1e-3, 1e-3, 2e-3, 2e-3, 3e-3])),
        "output": nir.Output(output_type=np.array([N])),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "delay"), ("delay", "lif"), ("lif", "output")]
    graph = set_graph_contract(nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False), dt=1e-3)
    assert snnx.lower(graph, to="snntorch").has_cycles
    assert_conforms(graph, RNG.uniform(0, 2, size=(50, 2, 3)), spiking=True)


def conv_graph(reset: str = "subtract", readout: str = "LI") -> nir.NIRGraph:
    """(1, 8, 8) -> conv 3x3 'same' -> LIF -> 2x2 sum pool -> flatten -> affine -> LI (or LIF)."""
    dt, tau = 1e-3, 4e-3  # dt/tau = 1/4 and r = tau/dt = 4: every folded parameter is exact in binary
    c = 8
    lif = nir.LIF(tau=np.full((c, 8, 8), tau), r=np.full((c, 8, 8), 4.0), v_leak=np.zeros((c, 8, 8)),
                  v_threshold=np.ones((c, 8, 8)), v_reset=np.zeros((c, 8, 8)))
    if readout == "LI":
        out = nir.LI(tau=full(8e-3, 10), r=full(8.0, 10), v_leak=full(0.0, 10))
    else:
        out = nir.LIF(tau=full(tau, 10), r=full(4.0, 10), v_leak=full(0.0, 10), v_threshold=full(1.0, 10), v_reset=full(0.0, 10))
        set_node_contract(out, reset=reset)
    nodes = {
        "input": nir.Input(input_type=np.array([1, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=RNG.normal(size=(c, 1, 3, 3)) * 0.5, stride=1,
                           padding="same", dilation=1, groups=1, bias=np.zeros(c)),
        "lif": set_node_contract(lif, reset=reset),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([c, 4, 4])}, start_dim=0),
        "fc": nir.Affine(weight=RNG.normal(size=(10, c * 16)) * 0.1, bias=np.zeros(10)),
        "readout": out,
        "output": nir.Output(output_type=np.array([10])),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), metadata={}, type_check=False)
    return set_graph_contract(g, dt=dt)


@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_conv_pool_network_matches_reference(reset):
    x = RNG.uniform(0, 2, size=(12, 4, 1, 8, 8))
    assert_conforms(conv_graph(reset, readout="LIF"), x, spiking=True)


# -- what snnTorch cannot express is refused, not approximated ----------------------------------------
def test_unstable_time_step_is_refused_with_node_and_fix():
    graph = dense_graph(make_neuron("LIF", "value", 0.0, 0.0), dt=5e-3)  # dt/tau = 1.25: beta < 0
    reasons = BACKEND.refusals(snnx.api.prepare(graph))
    assert any("node 'neuron'" in r and "beta" in r and "smaller dt" in r for r in reasons), reasons
    with pytest.raises(UnsupportedNodeError, match="node 'neuron'"):
        snnx.lower(graph, to="snntorch")


def test_non_strict_surrogate_is_rejected():
    graph = dense_graph(make_neuron("LIF", "value", 0.0, 0.0))
    with pytest.raises(SnnxError, match="strict"):
        snnx.lower(graph, to="snntorch", spike_grad=lambda x: (x >= 0).float())
    with pytest.raises(SnnxError, match="unknown options"):
        snnx.lower(graph, to="snntorch", beta=0.9)


# -- training -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["LI", "CubaLIF"])
def test_gradients_reach_every_weight(readout):
    graph = conv_graph()
    if readout == "CubaLIF":
        graph.nodes["readout"] = nir.CubaLIF(
            tau_syn=full(2e-3, 10), tau_mem=full(4e-3, 10), r=full(4.0, 10), v_leak=full(0.0, 10),
            v_threshold=full(0.5, 10), v_reset=full(0.0, 10))
    model = snnx.lower(graph, to="snntorch", spike_grad="fast_sigmoid")
    model(torch.rand(6, 5, 1, 8, 8) * 2).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert set(grads) == {"layers.conv.weight", "layers.conv.bias", "layers.fc.weight", "layers.fc.bias"}
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name


def test_raise_of_lower_simulates_identically_also_after_training():
    graph = conv_graph("value", readout="LIF")
    model = snnx.lower(graph, to="snntorch", dtype="float64")
    x = RNG.uniform(0, 2, size=(10, 3, 1, 8, 8))
    np.testing.assert_array_equal(snnx.simulate(snnx.raise_(model), x)["output"], snnx.simulate(graph, x)["output"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    raised = snnx.raise_(model)
    assert raised.metadata["snnx"]["dt"] == pytest.approx(1e-3)
    assert raised.nodes["lif"].metadata["snnx"]["reset"] == "value"
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], run(model, x))


def test_save_then_torch_load_in_a_fresh_session(tmp_path):
    graph = conv_graph("subtract", readout="LI")
    model = snnx.lower(graph, to="snntorch")
    x = RNG.uniform(0, 2, size=(6, 2, 1, 8, 8)).astype(np.float32)
    expected = run(model, x)
    path = tmp_path / "model.pt"
    BACKEND.save(model, str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left behind
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, torch\n"
        f"m = torch.load({str(path)!r}, weights_only=False)\n"
        f"y = m(torch.as_tensor(np.load({str(tmp_path / 'x.npy')!r})))\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y.detach().double().numpy())\n"
        "print(type(m).__module__, type(m.layer('lif').neuron).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["snnx.torch.graph", "Leaky"]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    loaded = BACKEND.load(str(path))
    np.testing.assert_array_equal(run(loaded, x), expected)


def test_load_refuses_other_files_clearly(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "other.pt")
    with pytest.raises(SnnxError, match="not a model lowered with --to snntorch"):
        BACKEND.load(str(tmp_path / "other.pt"))


def test_cli_lower_then_raise_round_trip(tmp_path, capsys):
    from snnx.cli import main

    graph = conv_graph("subtract", readout="LIF")
    snnx.save(graph, tmp_path / "g.nir")
    assert main(["lower", str(tmp_path / "g.nir"), "--to", "snntorch", "-o", str(tmp_path / "m.pt")]) == 0
    printed = capsys.readouterr().out
    assert "snntorch GraphModule" in printed and "Leaky" in printed and "parameters" in printed
    assert main(["raise", str(tmp_path / "m.pt"), "-o", str(tmp_path / "r.nir")]) == 0
    x = RNG.uniform(0, 2, size=(8, 2, 1, 8, 8))
    raised = snnx.load(tmp_path / "r.nir")
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], snnx.simulate(graph, x)["output"])


@pytest.mark.slow
def test_training_on_digits_beats_chance_and_raises_back_exactly():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in [0, 1]
    labels = digits.target
    order = np.random.default_rng(0).permutation(len(labels))
    train, test = order[:1400], order[1400:]
    T = 8
    torch.manual_seed(0)
    model = snnx.lower(conv_graph("subtract", readout="LI"), to="snntorch")
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    encode = lambda idx: torch.as_tensor(images[idx])[None].expand(T, *images[idx].shape) * 2  # noqa: E731

    seen_grads: dict[str, bool] = {}
    for _epoch in range(3):
        for start in range(0, len(train), 50):
            idx = train[start : start + 50]
            logits = model(encode(idx)).mean(0)
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels[idx]))
            optimiser.zero_grad()
            loss.backward()
            for name, p in model.named_parameters():
                seen_grads[name] = seen_grads.get(name, False) or bool(p.grad is not None and p.grad.abs().sum() > 0)
            optimiser.step()
    assert seen_grads and all(seen_grads.values()), seen_grads

    with torch.no_grad():
        out32 = model(encode(test)).mean(0)
    accuracy = float((out32.argmax(1).numpy() == labels[test]).mean())
    print(f"snntorch digits test accuracy after 3 epochs: {accuracy:.3f}")
    assert accuracy > 0.5

    raised = snnx.raise_(model)
    x = encode(test).double().numpy()
    ref = snnx.simulate(raised, x)["output"]
    got = run(model.double(), x)  # float64: the raised weights are the module's exactly
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    assert float((ref.mean(0).argmax(1) == labels[test]).mean()) == pytest.approx(accuracy, abs=0.01)


@pytest.mark.parametrize("name", ["nirtorch_braille.nir", "nirtorch_lif_norse.nir"])
def test_shared_nir_samples_agree_with_reference(samples_dir, name):
    (agreement,) = snnx.check(samples_dir / name, backends=["snntorch"], steps=100, batch=4)
    assert agreement.status == "agree", agreement
    assert agreement.spikes_total > 0


def test_trained_model_can_be_deep_copied():
    """A best-model snapshot (copy.deepcopy) after backward must work: no stale non-leaf state kept."""
    import copy

    model = snnx.lower(conv_graph(), to="snntorch")
    x = torch.rand(3, 2, 1, 8, 8)
    model(x).sum().backward()
    snapshot = copy.deepcopy(model)
    torch.testing.assert_close(snapshot(x), model(x))
