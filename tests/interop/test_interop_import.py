"""`snnx import --from NAME|auto`: files written by each framework's own exporter, simulated by snnx,
reproduce that framework's own forward spike for spike (T=50, batch 4, Bernoulli input)."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
from interop_models import bernoulli

import snnx
from snnx.cli import main

MODELS = {
    "snntorch": ["mlp", "conv", "synaptic", "rleaky", "rsynaptic"],
    "norse": ["lifbox_mlp", "lifbox_conv", "lif_mlp", "iaf_mlp"],
    "spikingjelly": ["lif_mlp", "if_conv", "cuba_mlp"],
    "sinabs": ["iaf_mlp", "lif_mlp", "iaf_conv"],
    "rockpool": ["lif_mlp", "lifneuron_mlp"],
}
CASES = [(fw, kind) for fw, kinds in MODELS.items() for kind in kinds]


def build(framework: str, kind: str):
    pytest.importorskip(framework)
    import interop_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(interop_models, f"{framework}_model")(kind)


def assert_same_spikes(expected: np.ndarray, got: np.ndarray) -> None:
    """Exact equality, on a comparison that can fail: binary spikes, and some of them."""
    assert set(np.unique(expected)) <= {0.0, 1.0}, "the framework emitted graded spikes: not comparable"
    assert expected.sum() > 0, "the framework's model emitted no spike: nothing was compared"
    assert got.shape == expected.shape
    mismatch = float(np.mean(got != expected))
    assert mismatch == 0, f"{mismatch:.2%} of the spikes differ ({int(expected.sum())} expected spikes)"


def writable(graph: nir.NIRGraph) -> bool:
    """Norse's and Sinabs' exporters leave Conv2d.input_shape None, which nir.write cannot store."""
    return all(getattr(n, "input_shape", 0) is not None for n in graph.nodes.values())


def import_and_run(tmp_path, graph, source: str, x: np.ndarray, *extra: str) -> np.ndarray:
    src, out = tmp_path / "peer.nir", tmp_path / f"imported_{source}.nir"
    if writable(graph):
        # snnx.save, not nir.write: nir 1.0.8 cannot compress Norse's 0-d parameters; nothing else differs.
        snnx.save(graph, src)
        assert main(["import", str(src), "--from", source, "-o", str(out), *extra]) == 0
    else:  # no file can hold this graph: the same import through the Python API
        from snnx.interop import import_graph

        result = import_graph(graph, source, dict(a.split("=", 1) for a in extra[1::2]))
        print("\n".join(result.notes))
        snnx.save(result.graph, out)
    imported = nir.read(out)  # every file snnx writes opens with nir.read
    traces = snnx.simulate(snnx.load(out), x.astype(np.float64))
    assert len(traces) == 1
    assert imported.metadata["snnx"]["dt"] > 0
    return next(iter(traces.values()))


@pytest.mark.parametrize(("framework", "kind"), CASES)
@pytest.mark.parametrize("source", ["name", "auto"])
def test_import_reproduces_the_frameworks_forward(tmp_path, capsys, framework, kind, source):
    graph, forward, shape = build(framework, kind)
    x = bernoulli(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = forward(x)
    got = import_and_run(tmp_path, graph, framework if source == "name" else "auto", x)
    assert_same_spikes(expected, got.reshape(expected.shape))
    if source == "auto":
        assert f"producer: {framework} (" in capsys.readouterr().out


def test_zero_reset_snntorch_model_needs_the_assumption_overridden(tmp_path):
    """The file does not say the reset; the default (subtract) is wrong for a zero-reset model, and
    -A reset=zero makes it exact: the check can fail."""
    graph, forward, shape = build("snntorch", "mlp_zero")
    x = bernoulli(shape)
    expected = forward(x)
    assert_same_spikes(expected, import_and_run(tmp_path, graph, "snntorch", x, "-A", "reset=zero"))
    wrong = import_and_run(tmp_path, graph, "snntorch", x)
    assert np.any(wrong != expected)


def test_without_the_profile_norse_files_disagree(tmp_path):
    """Loading Norse's file as is (inverted tau, snnx's default dt) is wrong: the comparison can fail."""
    graph, forward, shape = build("norse", "lifbox_mlp")
    x = bernoulli(shape)
    expected = forward(x)
    from snnx.ir.io import read_graph

    path = tmp_path / "raw.nir"
    snnx.save(graph, path)
    raw = read_graph(path)  # the file the exporter wrote, without snnx import (nir.read refuses it)
    raw.nodes["input"] = nir.Input(input_type={"input": np.array([20])})
    raw.nodes["output"] = nir.Output(output_type={"output": np.array([10])})
    got = next(iter(snnx.simulate(raw, x.astype(np.float64)).values()))
    assert np.any(got != expected)


def test_zero_reset_on_synaptic_is_refused_naming_the_node(tmp_path, capfd):
    """Synaptic's zero reset blanks the membrane one step late: not expressible, so refused."""
    graph, _, _ = build("snntorch", "synaptic")
    src, out = tmp_path / "peer.nir", tmp_path / "out.nir"
    snnx.save(graph, src)
    assert main(["import", str(src), "--from", "snntorch", "-A", "reset=zero", "-o", str(out)]) == 2
    err = capfd.readouterr().err
    assert not out.exists() and err.startswith("snnx: error: node '") and "blanks the membrane" in err


def test_norse_li_readout_voltage_matches(tmp_path):
    """LIBoxCell is written with the same inverted tau; its voltage agrees within the conformance tolerance."""
    graph, forward, shape = build("norse", "lifbox_li")
    x = bernoulli(shape)
    expected = forward(x)
    got = import_and_run(tmp_path, graph, "norse", x).reshape(expected.shape)
    assert np.abs(expected).max() > 0.1, "the readout never moved: nothing was compared"
    assert np.all(np.abs(got - expected) <= 1e-5 * np.maximum(1, np.abs(expected)))
