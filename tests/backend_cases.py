"""Graphs and checks shared by the Norse and SpikingJelly backend tests (``test_backend_*.py``).

Every case compares a lowered model with :func:`snnx.simulate` by the conformance rule of
``specs/semantics.md`` §8: spikes exactly, other outputs within 1e-5 relative.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

import snnx
from snnx.ir.semantics import set_graph_contract, set_node_contract


def single(neuron: nir.NIRNode, n: int, dt: float, *, weight: np.ndarray | None = None) -> nir.NIRGraph:
    """``input -> [Linear] -> neuron -> output`` with ``n`` neurons and contract ``dt``."""
    nodes = {"input": nir.Input(input_type=np.array([n])), "neuron": neuron,
             "output": nir.Output(output_type=np.array([n]))}
    edges = [("neuron", "output")]
    if weight is None:
        edges.append(("input", "neuron"))
    else:
        nodes["w"] = nir.Linear(weight=np.asarray(weight, dtype=np.float64))
        nodes["input"] = nir.Input(input_type=np.array([weight.shape[1]]))
        edges += [("input", "w"), ("w", "neuron")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return set_graph_contract(graph, dt=dt)


def neuron(kind: str, n: int, *, reset: str = "value", v_init=None, i_init=None, **params) -> nir.NIRNode:
    """A neuron node of NIR class ``kind`` with broadcast parameters and contract metadata."""
    arrays = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy() for k, v in params.items()}
    node = getattr(nir, kind)(**arrays)
    return set_node_contract(
        node,
        reset=reset if kind in ("IF", "LIF", "CubaLIF") else None,
        v_init=None if v_init is None else np.broadcast_to(np.asarray(v_init, float), (n,)).copy(),
        i_init=None if i_init is None else np.broadcast_to(np.asarray(i_init, float), (n,)).copy(),
    )


def compare(graph: nir.NIRGraph, model, x: np.ndarray, backend: str) -> tuple[int, float]:
    """Spike mismatches (or rel. error of a non-spiking output) of ``model`` vs the reference."""
    ref = snnx.simulate(graph, x)
    out = snnx.get_backend(backend).run(model, {"input": x})
    spiking = snnx.api.spiking_outputs(graph)
    worst = 0.0
    flips = 0
    for name, want in ref.items():
        got = out[name]
        assert got.shape == want.shape, (name, got.shape, want.shape)
        if not np.all(np.isfinite(got)):  # NaN/inf is never agreement (max(0, nan) would be 0)
            return got.size, float("inf")
        if name in spiking:
            flips += int(np.sum(got != want))
        else:
            worst = max(worst, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
    return flips, worst


# -- the cases: (id, kind, params, reset, v_init, i_init, dt) ----------------------------------------
#: Exact-arithmetic cases: every number is a short binary fraction, so float32 and float64 agree
#: exactly and the membrane lands *on* the threshold at some steps (which must not spike).
ON_THRESHOLD = [
    ("IF", dict(r=2.0, v_threshold=1.0, v_reset=0.0), 0.25),
    ("LIF", dict(tau=0.5, r=2.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0), 0.25),
    ("CubaLIF", dict(tau_syn=0.25, tau_mem=0.5, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0, w_in=2.0), 0.25),
]

#: Non-trivial parameters (v_leak, r, tau, dt, per-neuron arrays where the framework allows).
GENERIC = {
    "IF": dict(r=[150.0, 200.0, 75.0, 100.0], v_threshold=[1.0, 0.8, 1.25, 1.0], v_reset=[-0.25, 0.0, 0.1, -0.1]),
    "LIF": dict(tau=[2e-3, 3e-3, 5e-3, 4e-3], r=[1.5, 2.0, 0.5, 1.0], v_leak=[0.1, -0.2, 0.3, 0.0],
                v_threshold=[1.0, 0.8, 1.25, 1.0], v_reset=[-0.1, 0.0, 0.1, -0.25]),
    "LI": dict(tau=[2e-3, 3e-3, 5e-3, 4e-3], r=[1.5, 2.0, 0.5, 1.0], v_leak=[0.1, -0.2, 0.3, 0.0]),
    "I": dict(r=[1.5, 2.0, 0.5, 1.0]),
    "CubaLIF": dict(tau_syn=[2e-3, 3e-3, 1.5e-3, 4e-3], tau_mem=[4e-3, 5e-3, 6e-3, 8e-3],
                    r=[1.5, 2.0, 0.5, 1.0], v_leak=[0.1, -0.2, 0.3, 0.0], v_threshold=[0.8, 1.0, 0.6, 0.9],
                    v_reset=[0.05, 0.0, -0.1, 0.2],
                    w_in=[1.0, 0.5, 2.0, 1.5]),
    "CubaLI": dict(tau_syn=[2e-3, 3e-3, 1.5e-3, 4e-3], tau_mem=[4e-3, 5e-3, 6e-3, 8e-3],
                   r=[1.5, 2.0, 0.5, 1.0], v_leak=[0.1, -0.2, 0.3, 0.0], w_in=[1.0, 0.5, 2.0, 1.5]),
}

#: The time step for GENERIC (1 ms: dt/tau between 0.125 and 0.67).
GENERIC_DT = 1e-3
#: Scalar (uniform) variants of GENERIC for backends whose neurons take one value per layer.
UNIFORM = {
    kind: {k: (v[0] if isinstance(v, list) and k in ("tau", "tau_syn", "tau_mem", "v_threshold", "v_reset")
               else v) for k, v in params.items()}
    for kind, params in GENERIC.items()
}
SPIKING_KINDS = ("IF", "LIF", "CubaLIF")


def on_threshold_input(T: int = 24) -> np.ndarray:
    """A constant drive of 1.0 with a few pauses: (T, 2, 1)."""
    x = np.ones((T, 2, 1))
    x[7:9, 1] = 0.0
    x[15, :] = 0.5
    return x


def random_input(T: int = 40, batch: int = 3, n: int = 4, seed: int = 0) -> np.ndarray:
    """Uniform drive in [-0.5, 2.5): (T, batch, n), negative enough to exercise leaks below v_leak."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 2.5, size=(T, batch, n))


def nudged_threshold(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph`` with every threshold one float64 step lower: it spikes where the membrane lands on it."""
    import copy

    g = copy.deepcopy(graph)
    for node in g.nodes.values():
        if hasattr(node, "v_threshold"):
            node.v_threshold = np.nextafter(np.asarray(node.v_threshold, float), -np.inf)
    return g


def recurrent_graph(dt: float = 1e-3) -> nir.NIRGraph:
    """``input -> fc -> lif -> output`` with ``lif -> rec -> lif`` (a cycle, run step by step)."""
    rng = np.random.default_rng(3)
    n = 5
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=rng.uniform(0, 1.5, (n, 3)), bias=np.full(n, 0.1)),
            "lif": set_node_contract(
                nir.LIF(tau=np.full(n, 4e-3), r=np.full(n, 2.0), v_leak=np.zeros(n),
                        v_threshold=np.full(n, 1.0), v_reset=np.zeros(n)),
                reset="subtract", v_init=np.linspace(0, 0.9, n)),
            "rec": nir.Linear(weight=rng.uniform(-0.8, 0.8, (n, n))),
            "output": nir.Output(output_type=np.array([n])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
        type_check=False,
    )
    return set_graph_contract(graph, dt=dt)


def conv_graph(dt: float = 1e-3, reset: str = "subtract", channels: int = 6, seed: int = 0) -> nir.NIRGraph:
    """The digits classifier: Conv2d(1->C, 3x3) -> LIF -> SumPool2d(2) -> Flatten -> Affine -> LI.

    Input ``(1, 8, 8)``, output ``(10,)`` membrane potentials.
    """
    rng = np.random.default_rng(seed)
    c = channels
    lif_shape = (c, 8, 8)
    fc_in = c * 4 * 4
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 8, 8])),
            "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.6, (c, 1, 3, 3)), stride=1,
                               padding=1, dilation=1, groups=1, bias=np.full(c, 0.1)),
            "lif": set_node_contract(
                nir.LIF(tau=np.full(lif_shape, 5e-3), r=np.ones(lif_shape), v_leak=np.zeros(lif_shape),
                        v_threshold=np.ones(lif_shape), v_reset=np.zeros(lif_shape)),
                reset=reset),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([c, 4, 4])}, start_dim=0, end_dim=-1),
            "fc": nir.Affine(weight=rng.normal(0, 1.0 / np.sqrt(fc_in), (10, fc_in)), bias=np.zeros(10)),
            "li": nir.LI(tau=np.full(10, 1e-2), r=np.ones(10), v_leak=np.zeros(10)),
            "output": nir.Output(output_type=np.array([10])),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"),
               ("fc", "li"), ("li", "output")],
        type_check=False,
    )
    return set_graph_contract(graph, dt=dt)


def digits(T: int = 8):
    """sklearn digits as constant-current input ``(T, N, 1, 8, 8)`` in [0, 1.5], labels, split 75/25."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0 * 1.5).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    x, y = x[idx], y[idx]
    split = int(0.75 * len(y))
    tile = lambda a: np.broadcast_to(a[None], (T, *a.shape))  # noqa: E731
    return tile(x[:split]), y[:split], tile(x[split:]), y[split:]


def train_digits(backend: str, epochs: int = 3, seed: int = 0) -> tuple[float, object, nir.NIRGraph]:
    """Lower :func:`conv_graph` to ``backend``, train it on digits; returns test accuracy, model, graph."""
    import torch

    torch.manual_seed(seed)
    graph = conv_graph(seed=seed)
    model = snnx.lower(graph, to=backend)
    xtr, ytr, xte, yte = digits()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    xtr_t, ytr_t = torch.as_tensor(np.ascontiguousarray(xtr)), torch.as_tensor(ytr)
    for _ in range(epochs):
        perm = torch.randperm(len(ytr))
        for start in range(0, len(ytr), 64):
            b = perm[start:start + 64]
            out = model(xtr_t[:, b])
            loss = torch.nn.functional.cross_entropy(out.mean(0), ytr_t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = model(torch.as_tensor(np.ascontiguousarray(xte))).mean(0).argmax(1).numpy()
    return float(np.mean(pred == yte)), model, graph


# -- the shared tests: each backend's test module imports them and defines a ``backend`` fixture ------
CASES = [(kind, reset) for kind in GENERIC for reset in (("value", "subtract") if kind in SPIKING_KINDS else (None,))]
CASE_IDS = [f"{k}-{r or 'nonspiking'}" for k, r in CASES]


def generic_neuron(kind: str, reset: str | None) -> nir.NIRNode:
    """A GENERIC ``kind`` neuron of 4 with a non-zero ``v_init`` (and ``i_init`` for Cuba nodes)."""
    return neuron(kind, 4, reset=reset or "value", v_init=[0.5, -0.2, 0.9, 0.0],
                  i_init=[0.3, 0.0, -0.1, 0.2] if kind.startswith("Cuba") else None, **GENERIC[kind])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("kind", "reset"), CASES, ids=CASE_IDS)
def test_neuron_matches_reference(backend, kind, reset, dtype):
    """Per-neuron r, v_leak, tau, thresholds, resets and a non-zero v_init/i_init at dt = 1 ms."""
    node = generic_neuron(kind, reset)
    graph = single(node, 4, GENERIC_DT)
    model = snnx.lower(graph, to=backend, dtype=dtype)
    x = random_input()
    if kind in SPIKING_KINDS:
        assert snnx.simulate(graph, x)["output"].sum() > 20  # the case exercises spikes and resets
    flips, err = compare(graph, model, x, backend)
    assert flips == 0
    assert err <= 1e-5


@pytest.mark.parametrize("reset", ["value", "subtract"])
@pytest.mark.parametrize(("kind", "params", "dt"), ON_THRESHOLD, ids=[c[0] for c in ON_THRESHOLD])
def test_membrane_exactly_on_threshold_does_not_spike(backend, kind, params, dt, reset):
    graph = single(neuron(kind, 1, reset=reset, **params), 1, dt)
    x = on_threshold_input()
    # Non-vacuous: a threshold one step lower changes the spikes, so the membrane lands on it exactly.
    assert not np.array_equal(snnx.simulate(graph, x)["output"], snnx.simulate(nudged_threshold(graph), x)["output"])
    flips, _ = compare(graph, snnx.lower(graph, to=backend), x, backend)
    assert flips == 0


def test_recurrent_graph_matches_reference(backend):
    graph = recurrent_graph()
    model = snnx.lower(graph, to=backend)
    assert model.has_cycles
    x = random_input(T=30, batch=2, n=3, seed=1)
    assert snnx.simulate(graph, x)["output"].sum() > 10
    assert compare(graph, model, x, backend) == (0, 0.0)


def test_conv_graph_matches_reference_and_state_is_fresh_per_call(backend):
    import torch

    graph = conv_graph()
    model = snnx.lower(graph, to=backend)
    x = np.random.default_rng(0).random((8, 4, 1, 8, 8)) * 1.5
    flips, err = compare(graph, model, x, backend)
    assert flips == 0 and err <= 1e-5
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(model(xt), model(xt))


def test_gradients_reach_every_weight(backend):
    import torch

    model = snnx.lower(conv_graph(), to=backend)
    x = torch.as_tensor(np.random.default_rng(1).random((8, 16, 1, 8, 8)) * 1.5, dtype=torch.float32)
    loss = torch.nn.functional.cross_entropy(model(x).mean(0), torch.arange(16) % 10)
    loss.backward()
    params = dict(model.named_parameters())
    assert {"layers.conv.weight", "layers.fc.weight"} <= set(params)
    for name, p in params.items():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(("kind", "reset"), CASES, ids=CASE_IDS)
def test_raise_of_untrained_model_is_the_original_graph(backend, kind, reset):
    node = generic_neuron(kind, reset)
    graph = single(node, 4, GENERIC_DT)
    raised = snnx.raise_(snnx.lower(graph, to=backend))
    got = raised.nodes["neuron"]
    assert type(got) is type(node)
    for field in ("tau", "tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
        if hasattr(node, field):
            np.testing.assert_array_equal(np.broadcast_to(getattr(got, field), (4,)), getattr(node, field), err_msg=field)
    assert got.metadata["snnx"].get("reset") == (reset if kind in SPIKING_KINDS else None)
    np.testing.assert_array_equal(got.metadata["snnx"]["v_init"], node.metadata["snnx"]["v_init"])
    x = random_input()
    np.testing.assert_array_equal(snnx.simulate(raised, x)["output"], snnx.simulate(graph, x)["output"])


def test_raise_after_training_step_matches_module(backend):
    import torch

    graph = conv_graph()
    model = snnx.lower(graph, to=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.as_tensor(np.random.default_rng(2).random((8, 16, 1, 8, 8)) * 1.5, dtype=torch.float32)
    torch.nn.functional.cross_entropy(model(x).mean(0), torch.arange(16) % 10).backward()
    opt.step()
    raised = snnx.raise_(model)
    assert not np.array_equal(raised.nodes["conv"].weight, graph.nodes["conv"].weight)
    flips, err = compare(raised, model, x.double().numpy(), backend)
    assert flips == 0 and err <= 1e-5


def test_save_then_torch_load_gives_a_working_model(backend, tmp_path):
    import torch

    graph = conv_graph()
    model = snnx.lower(graph, to=backend)
    path = tmp_path / "model.pt"
    snnx.get_backend(backend).save(model, str(path))
    loaded = torch.load(path, weights_only=False)
    x = torch.as_tensor(np.random.default_rng(4).random((6, 2, 1, 8, 8)), dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temp file left behind
    again = snnx.get_backend(backend).load(str(path))  # what `snnx raise model.pt` uses
    np.testing.assert_array_equal(again.to_nir().nodes["fc"].weight, graph.nodes["fc"].weight.astype(np.float32))
    other = "norse" if backend != "norse" else "spikingjelly"
    with pytest.raises(snnx.SnnxError, match=f"model of backend {backend!r}"):
        snnx.get_backend(other).load(str(path))


@pytest.mark.parametrize(("kind", "reset"), CASES, ids=CASE_IDS)
def test_step_by_step_equals_the_multi_step_forward(backend, kind, reset):
    """Graphs with cycles run ``init_state``/``step``; they must compute what ``forward`` does."""
    import torch

    node = generic_neuron(kind, reset)
    module = snnx.lower(single(node, 4, GENERIC_DT), to=backend, dtype="float64").layer("neuron")
    x = torch.as_tensor(random_input(seed=7))
    with torch.no_grad():
        whole = module(x)
        state = module.init_state(x[0])
        steps = []
        for t in range(x.shape[0]):
            y, state = module.step(x[t], state)
            steps.append(y)
    assert torch.equal(whole, torch.stack(steps))


@pytest.mark.slow
def test_training_on_digits_beats_chance_and_raises_to_the_same_model(backend):
    acc, model, _ = train_digits(backend, epochs=2)
    assert acc > 0.5, acc  # chance is 0.1
    raised = snnx.raise_(model)
    assert isinstance(raised, nir.NIRGraph)
    x = np.random.default_rng(6).random((8, 20, 1, 8, 8)) * 1.5
    flips, err = compare(raised, model, x, backend)
    assert flips == 0 and err <= 1e-5
