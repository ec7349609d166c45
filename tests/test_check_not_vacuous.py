"""``check``/``compare`` cannot pass vacuously: NaN is a disagreement, no spikes is not a pass."""

import numpy as np
import pytest

import snnx
from snnx.api import compare, prepare
from snnx.cli import main
from snnx.conformance import CASES_DIR, case_names, load_case
from snnx.ir.reference import simulate


def _case(name):
    case = load_case(name)
    return case, simulate(case.graph, case.inputs, record=True)


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_nan_or_inf_in_a_non_spiking_output_disagrees(fill):
    case, record = _case("li")
    got = {"output": np.full_like(case.expected["output"], fill)}
    result = compare(case.graph, case.expected, got, "x", record=record)
    assert result.status == "disagree" and not result.ok
    assert result.per_output["output"]["non_finite"] == got["output"].size
    assert result.max_abs_error == float("inf")


def test_nan_in_a_spiking_output_disagrees():
    case, record = _case("lif_value")
    got = {"output": np.full_like(case.expected["output"], np.nan)}
    assert compare(case.graph, case.expected, got, "x", record=record).status == "disagree"


def test_no_spike_anywhere_is_vacuous_not_agree():
    case = load_case("lif_chain")
    silent = {"input": np.zeros_like(case.inputs["input"])}
    (result,) = snnx.check(case.graph, ["snntorch"], silent)
    assert result.status == "vacuous" and not result.ok
    assert "no spike" in result.detail
    assert result.spikes_total == 0 and set(result.silent) == {"lif1", "output"}


def test_check_compares_internal_spiking_layers_through_probes():
    case = load_case("mlp_two_layers")
    (result,) = snnx.check(case.graph, ["snntorch"], case.inputs)
    assert result.status == "agree"
    assert result.compared == ["lif1", "output"]
    assert result.per_output["lif1"]["spikes"] > 0


def test_a_wrong_hidden_layer_is_caught_even_when_outputs_would_hide_it(monkeypatch):
    # A backend that silences lif1's probe: only the internal comparison can see it.
    from snnx.plugins import get_backend

    backend = get_backend("reference")
    original = backend.run

    def run(model, inputs):
        out = original(model, inputs)
        return {k: (np.zeros_like(v) if k.startswith("__probe__") else v) for k, v in out.items()}

    monkeypatch.setattr(backend, "run", run)
    case = load_case("mlp_two_layers")
    (result,) = snnx.check(case.graph, ["reference"], case.inputs)
    assert result.status == "disagree" and result.per_output["lif1"]["spike_mismatches"] > 0


def test_cli_says_no_spikes_compared_and_exits_1(tmp_path, capsys):
    np.savez(tmp_path / "zeros.npz", input=np.zeros((5, 1, 6)))
    code = main(["check", str(CASES_DIR / "lif_chain.nir"), "--backends", "snntorch", "--input", str(tmp_path / "zeros.npz")])
    text = capsys.readouterr().out
    assert code == 1 and "vacuous" in text and "no spikes" in text


@pytest.mark.parametrize("name", case_names())
def test_every_conformance_case_exercises_its_spiking_nodes(name):
    case, record = _case(name)
    prepared = prepare(case.graph)
    result = compare(case.graph, case.expected, case.expected, "golden", record=record)
    assert result.status == "agree", f"{name}: {result.detail}"
    spikers = [n for n in prepared.schedule.order if type(prepared.nodes[n]).__name__ in ("IF", "LIF", "CubaLIF", "Threshold")]
    assert all(record[n].any() for n in spikers), [n for n in spikers if not record[n].any()]


def test_check_on_the_reference_prepares_each_graph_once(monkeypatch):
    # The prepared file is reused; only the graph with probes on its hidden layers is new. Before the
    # reference's model was the prepared graph, its run validated, flattened and scheduled it again.
    import snnx.ir.prepare as prepare_module

    case = load_case("lif_chain")
    prepared = prepare(case.graph)
    calls = []
    real = prepare_module.validate
    monkeypatch.setattr(prepare_module, "validate", lambda graph, **kw: calls.append(graph) or real(graph, **kw))
    (result,) = snnx.check(prepared, ["reference"], case.inputs)
    assert result.status == "agree" and result.compared == ["lif1", "output"]
    assert len(calls) == 1 and "__probe__lif1" in calls[0].nodes
