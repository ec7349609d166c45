"""Shared fixtures: paths to the sample files other tools wrote, and small graphs."""

import textwrap
from pathlib import Path

import nir
import numpy as np
import pytest

import snnx.plugins

from nir_samples import SAMPLES


@pytest.fixture
def samples_dir() -> Path:
    # In the repository (tests/data/nir-samples): a missing directory is a broken checkout, not a skip.
    assert SAMPLES.is_dir(), f"sample files not found at {SAMPLES}"
    return SAMPLES


@pytest.fixture
def small_graph() -> nir.NIRGraph:
    """Input(3) -> Affine -> LIF -> Output, with the snnx contract."""
    from snnx.ir.semantics import set_graph_contract

    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=np.arange(6, dtype=float).reshape(2, 3) / 6, bias=np.zeros(2)),
            "lif": nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2),
                           v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
        metadata={},
        type_check=False,
    )
    return set_graph_contract(g, dt=1e-3)


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Load a plugin module written from ``source`` as an extra built-in, then restore the real state.

    Shared by the plugin-API and the interop plugin tests.
    """

    def install(module_name: str, source: str) -> snnx.plugins.PluginState:
        (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(snnx.plugins, "BUILTIN_PLUGINS", (*snnx.plugins.BUILTIN_PLUGINS, module_name))
        return snnx.plugins.load_plugins(reload=True)

    yield install
    monkeypatch.undo()
    snnx.plugins.load_plugins(reload=True)
