"""`snnx export --for NAME`: the framework's own importer (default arguments) loads the file and runs
it with the reference's spikes, or snnx refuses with one line naming the node and writes nothing."""

from __future__ import annotations

import contextlib
import io
import warnings

import nir
import numpy as np
import pytest
from interop_models import bernoulli, run_imported
from test_interop_import import assert_same_spikes

import snnx
from snnx.api import spiking_outputs
from snnx.cli import main
from snnx.conformance import CASES_DIR

EXPORT_CASES = ["lif_chain", "cubalif_chain", "conv_lif_sumpool_affine"]
# Rewrites beyond the three required cases: per-neuron gains/leaks/resets folded into inserted or
# existing weights, SumPool2d feeding an output, cycles (snnTorch: the 2-cycle broken by an identity).
MORE_CASES = ["if_value", "lif_value", "cubalif_value", "conv_sumpool", "threshold_exact", "recurrent",
              "nested_subgraph", "if_chain", "affine_lif", "conv1d"]
# What each importer truly cannot take among MORE_CASES, and why (checked to refuse cleanly instead).
CANNOT = {
    ("cubalif_value", "spikingjelly"): "tau_mem differs across the layer",
    ("conv1d", "snntorch"): "has no mapping for Conv1d",
    ("conv1d", "norse"): "has no mapping for Conv1d",
}
RUNNABLE = ["snntorch", "norse", "spikingjelly"]


def export(tmp_path, case: str, target: str) -> tuple[int, object]:
    out = tmp_path / f"{case}.{target}.nir"
    return main(["export", str(CASES_DIR / f"{case}.nir"), "--for", target, "-o", str(out)]), out


@pytest.mark.parametrize("case", EXPORT_CASES + MORE_CASES)
@pytest.mark.parametrize("target", RUNNABLE)
def test_export_runs_in_the_frameworks_importer(tmp_path, capfd, case, target):
    pytest.importorskip(target)
    rc, out = export(tmp_path, case, target)
    if (case, target) in CANNOT:
        assert rc == 2 and not out.exists() and CANNOT[case, target] in capfd.readouterr().err
        return
    assert rc == 0
    graph = snnx.load(CASES_DIR / f"{case}.nir")
    shape = tuple(np.asarray(graph.nodes["input"].input_type["input"]).tolist())
    x = bernoulli(shape, seed=1)
    expected = next(iter(snnx.simulate(graph, x.astype(np.float64)).values()))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # importers print chatter
        warnings.simplefilter("ignore")
        got = run_imported(target, nir.read(out), x).reshape(expected.shape)
    if spiking_outputs(graph):
        assert_same_spikes(expected, got)
    else:  # an analog output (SumPool of spikes): the conformance tolerance, on non-zero values
        assert np.abs(expected).sum() > 0
        assert np.all(np.abs(got - expected) <= 1e-5 * np.maximum(1, np.abs(expected)))


@pytest.mark.parametrize("case", EXPORT_CASES)
def test_sinabs_export_refuses_in_one_line_and_writes_nothing(tmp_path, capfd, case):
    rc, out = export(tmp_path, case, "sinabs")
    err = capfd.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and "node '" in err and "reset to a value" in err


def test_snntorch_export_refuses_subtract_reset(tmp_path, capfd):
    rc, out = export(tmp_path, "affine_lif_subtract_vinit", "snntorch")
    err = capfd.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.startswith("snnx: error: node '") and "reset 'subtract'" in err and "Traceback" not in err


def test_export_refuses_a_node_kind_the_importer_lacks(tmp_path, capfd):
    rc, out = export(tmp_path, "delay", "norse")
    assert rc == 2 and not out.exists()
    assert "has no mapping for Delay" in capfd.readouterr().err
