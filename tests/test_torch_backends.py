"""The layout shared by the torch backends (snnTorch, Norse, SpikingJelly) and the executor they build on.

Each built-in torch backend is a package shaped like ``examples/snnx-sinabs``: ``plugin.py`` (hooks and
the Backend, no framework import), ``fold.py`` (numpy tables and refusals) and ``neurons.py`` (the
framework classes). These tests hold that shape, the executor's claim of what it runs
(``TORCH_NODE_TYPES``) and snnTorch's single fold per neuron.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

import snnx
from snnx.errors import UnsupportedNodeError
from snnx.ir import nodes
from snnx.ir.nodes import KINDS, NEURON_KINDS, NodeKind
from snnx.ir.prepare import prepare
from snnx.plugins import BUILTIN_PLUGINS
from snnx.torch.backend import EXECUTOR_KINDS, TORCH_NODE_TYPES

ROOT = Path(snnx.__file__).parent
TORCH_BACKENDS = ("snntorch", "norse", "spikingjelly")
FRAMEWORKS = ("torch", "snntorch", "norse", "spikingjelly")


# -- layout -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_each_torch_backend_is_a_package_like_the_sinabs_example(backend):
    package = ROOT / "plugins" / backend
    assert sorted(p.name for p in package.glob("*.py")) == ["__init__.py", "fold.py", "neurons.py", "plugin.py"]
    assert f"snnx.plugins.{backend}.plugin" in BUILTIN_PLUGINS
    assert snnx.get_backend(backend).plugin == f"snnx.plugins.{backend}.plugin"


def test_plugins_and_folds_import_no_framework():
    modules = [f"snnx.plugins.{b}.{m}" for b in TORCH_BACKENDS for m in ("plugin", "fold")]
    modules += ["snnx.torch.backend", "snnx.torch.params", "snnx.plugins"]
    script = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import snnx.plugins\n"
        "snnx.plugins.load_plugins()\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every snnx module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("snnx"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("snnx") and not node.level:
            found.add(node.module)
            # `from snnx.torch import graph` imports the submodule snnx.torch.graph
            found.update(f"{node.module}.{a.name}" for a in node.names if (ROOT.parent / node.module.replace(".", "/") / f"{a.name}.py").exists())
    return found


def _torch_side_modules() -> dict[str, set[str]]:
    files = list((ROOT / "torch").glob("*.py"))
    for backend in TORCH_BACKENDS:
        files += (ROOT / "plugins" / backend).glob("*.py")
    return {_module_name(f): _imports(f) for f in files}


def test_no_import_cycles_in_the_torch_backends_and_executor():
    graph = _torch_side_modules()
    edges = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycle = path[path.index(d):] + [d]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_no_private_module_is_imported_from_another_package():
    for path in [*(ROOT / "torch").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        importer = _module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for target in _imports(path):
            parent, _, leaf = target.rpartition(".")
            if leaf.startswith("_") and not leaf.startswith("__"):
                assert parent == package, f"{importer} imports the private module {target} of another package"


def test_fold_modules_have_no_torch_and_neuron_type_tuples_live_only_in_folds():
    for backend in TORCH_BACKENDS:
        fold = _imports(ROOT / "plugins" / backend / "fold.py")
        assert not any(m.startswith(("snnx.torch.graph", "snnx.torch.neuron")) for m in fold), fold
    # the executor and the contract neuron read snnx.ir.nodes instead of keeping lists of NIR classes
    for path in (ROOT / "torch").glob("*.py"):
        text = path.read_text()
        for cls in ("nir.LIF", "nir.IF", "nir.CubaLIF", "nir.CubaLI"):
            assert f"({cls}," not in text and f", {cls})" not in text, f"{path.name} lists neuron types ({cls})"


# -- what the executor claims ----------------------------------------------------------------------------
def test_torch_node_types_are_exactly_what_the_executor_builds():
    from snnx.torch.graph import LAYERS

    assert set(LAYERS) == EXECUTOR_KINDS
    assert not set(LAYERS) & NEURON_KINDS  # neurons always go to the backend's factory
    assert set(LAYERS) | NEURON_KINDS == TORCH_NODE_TYPES
    assert TORCH_NODE_TYPES <= set(KINDS)
    for backend in TORCH_BACKENDS:
        assert snnx.get_backend(backend).capabilities.node_types == TORCH_NODE_TYPES


@dataclasses.dataclass(eq=False)
class Negate(nir.NIRNode):
    """A node type the reader might learn one day: ``y = -x``."""

    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_type = {"input": None}
        self.output_type = {"output": None}


@pytest.fixture
def new_kind(monkeypatch):
    """A kind added to the node-kind table (as a new NIR node type would be) that no torch code knows."""
    kind = NodeKind("Negate", Negate, apply=lambda node, x: -x)
    monkeypatch.setitem(nodes.KINDS, "Negate", kind)
    monkeypatch.setitem(nodes._BY_CLASS, Negate, kind)
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])), "neg": Negate(), "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "neg"), ("neg", "output")],
        type_check=False,
    )
    return prepare(g)


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_a_kind_the_executor_cannot_build_is_refused_not_failed_in_lower(backend, new_kind):
    b = snnx.get_backend(backend)
    if b.missing_requirements():
        pytest.skip(f"{backend} is not installed")
    assert b.refusals(new_kind) == ["node type Negate is not supported (nodes 'neg')"]
    with pytest.raises(UnsupportedNodeError, match=f"Backend '{backend}' cannot take this graph: node type Negate"):
        snnx.lower(new_kind, to=backend)


def test_the_executor_names_an_unbuildable_kind_if_a_backend_lets_it_through(new_kind):
    pytest.importorskip("torch")
    from snnx.torch.graph import build_graph_module

    with pytest.raises(UnsupportedNodeError, match="node 'neg': the torch executor cannot run NIR Negate"):
        build_graph_module(new_kind, lambda *a: None, backend="careless")


# -- dt and folding --------------------------------------------------------------------------------------
def test_snntorch_lower_folds_each_neuron_once(monkeypatch):
    pytest.importorskip("snntorch")
    from snnx.plugins.snntorch import fold

    calls: list[tuple[str, float]] = []
    for table in ("leaky_table", "synaptic_table"):
        original = getattr(fold, table)

        def counted(name, node, dt, _original=original):
            calls.append((name, dt))
            return _original(name, node, dt)

        monkeypatch.setattr(fold, table, counted)
    n = 3
    lif = nir.LIF(tau=np.full(n, 2e-3), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    cuba = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 4e-3), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif, "cuba": cuba,
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "cuba"), ("cuba", "output")],
        type_check=False,
    )
    prepared = prepare(g, dt=5e-4)
    snnx.get_backend("snntorch").lower(prepared)
    assert sorted(calls) == [("cuba", 5e-4), ("lif", 5e-4)]  # once each, at the prepared graph's dt
    calls.clear()
    assert snnx.get_backend("snntorch").refusals(prepared) == []
    assert sorted(calls) == [("cuba", 5e-4), ("lif", 5e-4)]


# -- the public contract neuron ----------------------------------------------------------------------------
def test_a_third_party_lif_on_the_public_contract_neuron():
    """The example of ``snnx.torch.neuron``'s docstring, completed: exact, raises back exactly, then trains."""
    torch = pytest.importorskip("torch")
    from snnx.ir.semantics import set_node_contract
    from snnx.torch.graph import build_graph_module
    from snnx.torch.neuron import ContractNeuron, f64

    class MyLIF(ContractNeuron):
        def __init__(self, name, node, dt):
            super().__init__(name, node, dt)
            self.decay = torch.nn.Parameter(torch.as_tensor(1 - dt / f64(node.tau)))
            self.remember("tau", node.tau, self.decay)
            self.register_buffer("gain", torch.as_tensor(dt / f64(node.tau) * f64(node.r)))
            self.node = node

        def init_state(self, x):
            return self.initial("v_init", x)

        def step(self, x, v):
            v = self.decay * v + self.gain * x + (1 - self.decay) * torch.as_tensor(f64(self.node.v_leak))
            s = (v > torch.as_tensor(f64(self.node.v_threshold))).to(x.dtype)
            return s, v * (1 - s)  # reset to v_reset = 0

        def to_nir(self):
            tau = self.recover("tau", self.decay, lambda d: self.dt / (1 - d))
            return nir.LIF(tau=tau, r=f64(self.node.r), v_leak=f64(self.node.v_leak),
                           v_threshold=f64(self.node.v_threshold), v_reset=f64(self.node.v_reset),
                           metadata=self.contract_metadata())

    n = 4
    lif = set_node_contract(
        nir.LIF(tau=np.full(n, 3e-3), r=np.full(n, 2.0), v_leak=np.full(n, 0.1), v_threshold=np.ones(n),
                v_reset=np.zeros(n)),
        reset="value", v_init=np.full(n, 0.5),
    )
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif, "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "output")],
        type_check=False,
    )
    prepared = prepare(g, dt=1e-3)
    model = build_graph_module(prepared, MyLIF, backend="mine", dtype=torch.float64)
    x = np.random.default_rng(0).uniform(0, 2, size=(12, 3, n))
    got = model(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_array_equal(got, snnx.simulate(prepared.graph, {"input": x})["output"])

    neuron = model.layer("lif")
    assert (neuron.node_name, neuron.dt, neuron.reset_mode) == ("lif", 1e-3, "value")
    assert not neuron.changed("tau", neuron.decay)
    raised = model.to_nir().nodes["lif"]
    np.testing.assert_array_equal(raised.tau, lif.tau)  # exactly, not 1e-3 / (1 - (1 - 1e-3/3e-3))
    assert raised.metadata["snnx"]["reset"] == "value"
    np.testing.assert_array_equal(raised.metadata["snnx"]["v_init"], np.full(n, 0.5))

    with torch.no_grad():
        neuron.decay.fill_(0.5)
    assert neuron.changed("tau", neuron.decay)
    np.testing.assert_allclose(model.to_nir().nodes["lif"].tau, np.full(n, 2e-3))
