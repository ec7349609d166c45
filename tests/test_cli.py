"""The CLI as a user meets it: real processes, exit codes, one-line errors, no tracebacks."""

import json
import subprocess
import sys

import nir
import numpy as np
import pytest

import snnx

from nir_samples import GOOD_SAMPLES, MALFORMED_SAMPLE


def snnx_cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "snnx.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("name", GOOD_SAMPLES)
def test_info_and_run_on_samples(samples_dir, tmp_path, name):
    code, out, err = snnx_cli("info", samples_dir / name)
    assert code == 0, err
    assert "reference" in out and "parameters" in out
    code, out, err = snnx_cli("run", samples_dir / name, "--random", 20, "--batch", 2, "-o", tmp_path / "out.npz")
    assert code == 0, err
    with np.load(tmp_path / "out.npz") as data:
        assert data["output"].shape[:2] == (20, 2)


def test_malformed_sample_is_a_clear_error(samples_dir, tmp_path):
    for cmd in (["info"], ["run", "--random", "5", "-o", tmp_path / "o.npz"], ["check"]):
        code, _out, err = snnx_cli(cmd[0], samples_dir / MALFORMED_SAMPLE, *cmd[1:])
        assert_one_line_error(code, err, "hidden.input", "(12,)")
    assert not (tmp_path / "o.npz").exists()


def test_info_reports_the_producers_dt(samples_dir):
    code, out, _ = snnx_cli("info", samples_dir / "nirtorch_braille.nir")
    assert code == 0
    assert "dt = 0.0001" in out.replace("\n", " ")


def test_run_with_input_file_matches_api(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    x = np.random.default_rng(3).random((15, 2, 3))
    np.savez(tmp_path / "x.npz", input=x)
    code, _out, err = snnx_cli("run", tmp_path / "g.nir", "--input", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert code == 0, err
    with np.load(tmp_path / "y.npz") as data:
        assert np.array_equal(data["output"], snnx.simulate(small_graph, x)["output"])


def test_bad_inputs_exit_2_without_traceback(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    (tmp_path / "junk.nir").write_bytes(b"\x00garbage" * 50)
    np.savez(tmp_path / "wrong.npz", input=np.zeros((5, 1, 7)))
    cases = [
        (["info", tmp_path / "missing.nir"], "no such file"),
        (["info", tmp_path / "junk.nir"], "not a valid .nir"),
        (["run", tmp_path / "g.nir", "--input", tmp_path / "wrong.npz"], "must have shape"),
        (["run", tmp_path / "g.nir", "--input", tmp_path / "nope.npz"], "no such file"),
        (["run", tmp_path / "g.nir", "--random", 5, "-o", tmp_path / "no" / "dir.npz"], "does not exist"),
        (["run", tmp_path / "g.nir", "--random", 5, "--backend", "nonsense"], "no backend named 'nonsense'"),
        (["lower", tmp_path / "g.nir", "--to", "nonsense"], "no backend named 'nonsense'"),
        (["check", tmp_path / "g.nir", "--backends", "nonsense"], "no backend named 'nonsense'"),
        (["stats", tmp_path / "g.nir", "--random", 5, "--backend", "nonsense"], "no backend named 'nonsense'"),
    ]
    for args, needle in cases:
        code, _out, err = snnx_cli(*args)
        assert_one_line_error(code, err, needle)


def test_usage_errors_exit_2(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    code, _out, err = snnx_cli("run", tmp_path / "g.nir")
    assert code == 2 and "exactly one of --input" in err and "Traceback" not in err


def test_debug_shows_traceback(tmp_path):
    code, _out, err = snnx_cli("--debug", "info", tmp_path / "missing.nir")
    assert code == 2 and "Traceback" in err


def test_check_validates_and_compares(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    code, out, err = snnx_cli("check", tmp_path / "g.nir")
    assert code == 0 and "valid" in out, err
    code, out, err = snnx_cli("check", tmp_path / "g.nir", "--backends", "reference", "--json")
    assert code == 0, err
    assert '"status": "agree"' in out


def test_plugins_lists_reference(tmp_path):
    code, out, err = snnx_cli("plugins", "--json")
    assert code == 0, err
    assert "snnx.plugins.reference" in out


def test_backend_options_reach_lower(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    code, _out, err = snnx_cli("run", tmp_path / "g.nir", "--random", 3, "-O", "unknown=1")
    assert_one_line_error(code, err, "takes no options", "unknown")
    code, _out, err = snnx_cli("run", tmp_path / "g.nir", "--random", 3, "-O", "novalue")
    assert code == 2 and "KEY=VALUE" in err


def test_check_reports_an_approximate_backend_without_failing(tmp_path, small_graph, monkeypatch):
    # A backend that declares approximate=True and disagrees is "approximate", not a failure.
    from snnx import api
    from snnx.plugins.reference import ReferenceBackend

    class Rounding(ReferenceBackend):
        name = "rounding"
        approximate = True

        def run(self, model, inputs):
            out = super().run(model, inputs)
            return {k: np.roll(v, 1, axis=0) for k, v in out.items()}

    backend = Rounding()
    monkeypatch.setattr(api, "get_backend", lambda name: backend)
    x = np.random.default_rng(0).random((30, 2, 3)) * 3
    (result,) = api.check(small_graph, ["rounding"], {"input": x})
    assert result.status == "approximate" and result.spike_mismatches > 0 and result.ok
    Rounding.approximate = False
    (result,) = api.check(small_graph, ["rounding"], {"input": x})
    assert result.status == "disagree" and not result.ok


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--random", "4"],
        ["run", "--random", "4", "--dt", "1e-3"],
        ["check", "--backends", "snntorch"],  # (the reference backend re-prepares its native NIR model)
        ["check"],
        ["stats", "--random", "4", "--json"],
        ["info"],
        ["lower", "--to", "snntorch", "-o", "{tmp}/g.pt"],
    ],
)
def test_commands_validate_the_graph_once(tmp_path, small_graph, monkeypatch, capsys, argv):
    # One prepared graph is passed along: read, validate, flatten and schedule happen once per command.
    import snnx.ir.prepare
    import snnx.ir.validate
    from snnx.cli import main

    if "snntorch" in argv:
        pytest.importorskip("snntorch")
    calls = []
    real = snnx.ir.validate.validate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(snnx.ir.validate, "validate", counting)
    monkeypatch.setattr(snnx.ir.prepare, "validate", counting)
    snnx.save(small_graph, tmp_path / "g.nir")
    rest = [a.replace("{tmp}", str(tmp_path)) for a in argv[1:]]
    assert main([argv[0], str(tmp_path / "g.nir"), *rest]) == 0, capsys.readouterr().err
    assert len(calls) == 1


def test_input_options_are_shared(tmp_path, small_graph):
    # run, check and stats take the same input options; check keeps its default of 50 random steps.
    from snnx.cli import cli

    for name in ("run", "check", "stats"):
        params = {p.name for p in cli.commands[name].params}
        assert {"input_path", "random_steps", "batch", "seed", "dt"} <= params, name
    snnx.save(small_graph, tmp_path / "g.nir")
    code, out, err = snnx_cli("check", tmp_path / "g.nir", "--backends", "reference", "--json")
    assert code == 0, err
    code, _out, err = snnx_cli("check", tmp_path / "g.nir", "--backends", "reference", "--input", "x.npz", "--random", "3")
    assert code == 2 and "exactly one of --input" in err
    code, _out, err = snnx_cli("stats", tmp_path / "g.nir", "--input", "x.npz", "--random", "3")
    assert code == 2 and "exactly one of --input" in err


@pytest.mark.parametrize("command", [["info"], ["run", "--random", "2"], ["check"], ["stats", "--random", "2"],
                                     ["lower", "--to", "reference", "-o", "{tmp}/x.nir"]])
def test_every_command_shows_the_warnings_info_shows(tmp_path, capsys, command):
    from snnx.cli import main
    from snnx.conformance import CASES_DIR

    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    code = main([args[0], str(CASES_DIR / "lif_chain.nir"), *args[1:], "--dt", "0.05"])
    captured = capsys.readouterr()
    assert code == 0
    assert "node 'lif1': dt/tau = 5 > 1" in captured.out + captured.err


@pytest.mark.parametrize("dt", ["0", "-1", "nan", "inf"])
@pytest.mark.parametrize("command", [["info"], ["run", "--random", "2"], ["check"], ["stats", "--random", "2"],
                                     ["lower", "--to", "reference", "-o", "{tmp}/x.nir"]])
def test_a_bad_dt_exits_2_with_one_line(tmp_path, capfd, command, dt):
    import warnings

    from snnx.cli import main
    from snnx.conformance import CASES_DIR

    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked RuntimeWarning fails the test
        code = main([args[0], str(CASES_DIR / "lif_chain.nir"), *args[1:], "--dt", dt])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "dt" in err[0] and "internal" not in err[0], err


@pytest.mark.parametrize("shape", [(0, 1, 6), (3, 0, 6), (3, 1, 5)])
def test_bad_input_arrays_exit_2_naming_the_input(tmp_path, capfd, shape):
    from snnx.cli import main
    from snnx.conformance import CASES_DIR

    np.savez(tmp_path / "x.npz", input=np.zeros(shape))
    for command in (["run"], ["check", "--backends", "reference"], ["stats"]):
        code = main([command[0], str(CASES_DIR / "lif_chain.nir"), *command[1:], "--input", str(tmp_path / "x.npz")])
        err = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "'input'" in err[0] and "internal" not in err[0], (command, err)


def _damaged(tmp_path, edit):
    import shutil

    import h5py

    from snnx.conformance import CASES_DIR

    target = tmp_path / "bad.nir"
    shutil.copyfile(CASES_DIR / "conv_sumpool.nir", target)
    with h5py.File(target, "r+") as f:
        edit(f)
    return target


def _replace(f, name, value):
    del f[name]
    f[name] = value


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda f: _replace(f, "node/nodes/conv/stride", np.array([0, 0])), "conv"),
        (lambda f: _replace(f, "node/nodes/if/r", np.bytes_("fast")), "if.r"),
        (lambda f: f.require_group("node/nodes/if/metadata/snnx").create_dataset("v_init", data=np.ones(7)), "if.v_init"),
        (lambda f: _replace(f, "node/nodes/if/v_threshold", np.ones((3, 2, 2))), "if"),
    ],
    ids=["stride-0", "string-param", "v_init-shape", "param-shape"],
)
def test_bad_files_exit_2_with_one_line_naming_the_node(tmp_path, capfd, edit, names):
    from snnx.cli import main

    path = _damaged(tmp_path, edit)
    for command in (["info"], ["run", "--random", "2"], ["check"], ["stats", "--random", "2"]):
        code = main([command[0], str(path), *command[1:]])
        err = capfd.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"'{names}'" in err[0] and "internal" not in err[0], (command, err)


def test_lower_never_overwrites_its_input(tmp_path, small_graph):
    # The reference backend writes .nir: without -o the default target would be the input itself.
    path = tmp_path / "g.nir"
    snnx.save(small_graph, path)
    before = path.read_bytes()
    code, _out, err = snnx_cli("lower", path, "--to", "reference")
    assert code == 2 and "would overwrite the input file" in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("argv", [["info"], ["run", "{g}"], ["run", "{g}", "--random", "0"], ["check", "{g}", "--backends", ""]])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, small_graph, argv):
    snnx.save(small_graph, tmp_path / "g.nir")
    args = [a.replace("{g}", str(tmp_path / "g.nir")) for a in argv]
    code, _out, err = snnx_cli(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("snnx: error:"), err


def test_input_files_with_nan_or_extra_arrays_are_refused(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    np.savez(tmp_path / "nan.npz", input=np.full((3, 1, 3), np.nan))
    np.savez(tmp_path / "two.npz", input=np.zeros((3, 1, 3)), inptu=np.zeros((3, 1, 3)))
    code, _out, err = snnx_cli("run", tmp_path / "g.nir", "--input", tmp_path / "nan.npz")
    assert code == 2 and "NaN or inf" in err
    code, _out, err = snnx_cli("run", tmp_path / "g.nir", "--input", tmp_path / "two.npz")
    assert code == 2 and "'inptu'" in err


def test_check_with_every_backend_refusing_compared_nothing_and_fails(tmp_path, small_graph):
    from snnx.ir.semantics import set_node_contract

    set_node_contract(small_graph.nodes["lif"], reset="subtract")  # lava (fixed_pt) refuses subtract reset
    snnx.save(small_graph, tmp_path / "g.nir")
    code, _out, err = snnx_cli("check", tmp_path / "g.nir", "--backends", "lava", "--random", "3")
    assert code == 1 and "nothing was compared" in err


def test_inputs_can_be_nirdata_and_a_non_zip_file_is_named(tmp_path):
    # The conformance cases ship their inputs as NIRData (.nird): run takes them as they are.
    from snnx.conformance import CASES_DIR

    code, out, err = snnx_cli("run", CASES_DIR / "lif_chain.nir", "--input", CASES_DIR / "lif_chain.input.nird")
    assert code == 0, err
    (tmp_path / "x.npz").write_text("not a zip")
    code, _out, err = snnx_cli("run", CASES_DIR / "lif_chain.nir", "--input", tmp_path / "x.npz")
    assert code == 2 and "not an .npz (zip) file" in err


def _two_layer_graph():
    import nir

    from snnx.ir.semantics import set_graph_contract

    def lif(n: int) -> nir.LIF:
        return nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.5), v_reset=np.zeros(n))

    rng = np.random.default_rng(1)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc1": nir.Affine(weight=rng.uniform(0, 1, (4, 3)), bias=np.zeros(4)),
            "lif1": lif(4),
            "fc2": nir.Affine(weight=rng.uniform(0, 1, (2, 4)), bias=np.zeros(2)),
            "lif2": lif(2),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata={},
        type_check=False,
    )
    return set_graph_contract(g, dt=1e-3)


@pytest.mark.parametrize("hidden_error", [False, True])
def test_check_compares_a_chain_backends_hidden_layers_through_prefix_graphs(monkeypatch, hidden_error):
    # A backend that runs one chain only (no fan-out for a probe Output): check runs the graph up to the
    # hidden layer instead, and a wrong hidden layer is caught there.
    from snnx import api
    from snnx.plugins.reference import ReferenceBackend

    class Chain(ReferenceBackend):
        name = "chain"

        def refusals(self, graph):
            fan_out = [a for a, _b in graph.edges if sum(e[0] == a for e in graph.edges) > 1]
            return [f"node {fan_out[0]!r} fans out"] if fan_out else []

        def run(self, model, inputs):
            out = super().run(model, inputs)
            if hidden_error and "lif2" not in model.nodes:  # the prefix graph of lif1: corrupt its spikes
                out = {k: np.roll(v, 1, axis=0) for k, v in out.items()}
            return out

    backend = Chain()
    monkeypatch.setattr(api, "get_backend", lambda name: backend)
    x = np.random.default_rng(0).random((40, 2, 3)) * 3
    (result,) = api.check(_two_layer_graph(), ["chain"], {"input": x})
    assert "lif1" in result.compared and result.per_output["lif1"]["spikes"] > 0
    if hidden_error:
        assert result.status == "disagree" and result.per_output["lif1"]["spike_mismatches"] > 0
        assert result.per_output["output"]["spike_mismatches"] == 0
    else:
        assert result.status == "agree" and result.spike_mismatches == 0


def test_stats_json_is_strict_json_when_a_ratio_has_no_denominator(tmp_path, capsys):
    from snnx.cli import main

    # Input -> LIF -> Output has no synapse, so there are no ANN MACs to divide by: null, not Infinity.
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2])),
            "lif": nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2),
                           v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "lif"), ("lif", "output")],
    )
    snnx.save(g, tmp_path / "g.nir")
    assert main(["stats", str(tmp_path / "g.nir"), "--random", "4", "--json"]) == 0
    body = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert body["totals"]["sop_mac_ratio"] is None and body["totals"]["low_bit_ratio"] is None


def test_check_table_counts_refusal_reasons_not_semicolons():
    # A reason may contain "; " itself (lava's bias-in-a-recurrent-layer one does): the table counted
    # the pieces of the joined text and said "+4 more" for four reasons.
    from snnx.api import Agreement
    from snnx.cli import _first_reason

    reasons = ["node 'a': first", "node 'b': second; with a clause", "node 'c': third", "node 'd': fourth"]
    refused = Agreement("lava", "refused", "; ".join(reasons), reasons=reasons)
    assert _first_reason(refused) == "node 'a': first (+3 more: snnx info)"
    one = Agreement("lava", "refused", "node 'b': second; with a clause", reasons=["node 'b': second; with a clause"])
    assert _first_reason(one) == "node 'b': second; with a clause"
