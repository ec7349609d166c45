"""The interop hook, the commands' error handling, and `snnx info`'s producer guess."""

from __future__ import annotations


import nir
import numpy as np
import pytest

import snnx
import snnx.plugins
from snnx.cli import main
from snnx.conformance import CASES_DIR
from snnx.interop import get_profiles




def test_hook_snnx_register_interop(install_plugin, tmp_path, capsys):
    """A third-party profile registers like the built-ins and serves `snnx import --from` and auto."""
    state = install_plugin(
        "snnx_test_interop",
        """
        import nir
        from snnx import hookimpl
        from snnx.interop import Converted, Detection, Profile
        from snnx.ir.semantics import set_graph_contract

        class Doubler(Profile):
            name = "doubler"
            verified = {"doubler": "0.1"}

            def detect(self, graph):
                return Detection(self.name, 1.0 if graph.metadata.get("producer") == "doubler" else 0.0, "metadata")

            def import_(self, graph, assume):
                return Converted(graph=set_graph_contract(graph, dt=2e-4), assumed=["dt = 2e-4"])

        @hookimpl
        def snnx_register_interop(register):
            register(Doubler())
        """,
    )
    assert state.plugins["snnx_test_interop"].error is None
    assert "doubler" in get_profiles() and get_profiles()["doubler"].plugin == "snnx_test_interop"
    graph = snnx.load(CASES_DIR / "lif_chain.nir")
    graph.metadata = {"producer": "doubler"}
    src, out = tmp_path / "in.nir", tmp_path / "out.nir"
    snnx.save(graph, src)
    assert main(["import", str(src), "--from", "auto", "-o", str(out)]) == 0
    assert "producer: doubler (100% sure" in capsys.readouterr().out
    assert nir.read(out).metadata["snnx"]["dt"] == 2e-4


def test_a_profile_name_cannot_be_taken_twice(install_plugin):
    state = install_plugin(
        "snnx_test_interop_dup",
        """
        from snnx import hookimpl
        from snnx.interop import Profile

        class Again(Profile):
            name = "norse"

        @hookimpl
        def snnx_register_interop(register):
            register(Again())
        """,
    )
    assert "already taken" in state.plugins["snnx_test_interop_dup"].error
    assert type(get_profiles()["norse"]).__module__ == "snnx.interop.profiles.norse"


def test_builtin_profiles_record_verified_versions():
    profiles = get_profiles()
    assert {"snntorch", "norse", "spikingjelly", "sinabs", "rockpool"} <= set(profiles)
    for name in ("snntorch", "norse", "spikingjelly", "sinabs", "rockpool"):
        assert name in profiles[name].verified and profiles[name].verified["nir"] == "1.0.8"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing.nir", "--from", "norse"], "no such file"),
        (["import", "{case}", "--from", "chainer"], "no interop profile named 'chainer'"),
        (["import", "{case}", "--from", "auto"], "already carries the snnx contract"),
        (["import", "{unknown}", "--from", "auto"], "cannot tell which framework wrote this file"),
        (["import", "{case}", "--from", "snntorch", "-A", "reset"], "--assume takes KEY=VALUE"),
        (["export", "{case}", "--for", "nest"], "no interop profile named 'nest'"),
        (["export", "{case}", "--for", "rockpool"], "Rockpool"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, capfd, args, message):
    out = tmp_path / "out.nir"
    case = str(CASES_DIR / "affine_lif.nir")
    unknown = tmp_path / "unknown.nir"
    snnx.save(lif_graph(r=3.0, tau=0.05), unknown)
    rc = main([a.replace("{case}", case).replace("{unknown}", str(unknown)) for a in args] + ["-o", str(out)])
    err = capfd.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_a_bad_output_directory_fails_before_any_work(tmp_path, capfd):
    rc = main(["import", str(CASES_DIR / "lif_chain.nir"), "--from", "spikingjelly", "-o", str(tmp_path / "no" / "x.nir")])
    assert rc == 2 and "does not exist" in capfd.readouterr().err


def lif_graph(r: float, tau: float) -> nir.NIRGraph:
    """Affine -> LIF with nirtorch-style names and no snnx metadata, like a peer's file."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([3])}),
            "0": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
            "1": nir.LIF(tau=np.full(2, tau), r=np.full(2, r), v_leak=np.zeros(2), v_threshold=np.ones(2),
                         v_reset=np.zeros(2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "0"), ("0", "1"), ("1", "output")],
    )


def test_info_shows_the_producer_guess(tmp_path, capsys):
    path = tmp_path / "st.nir"
    snnx.save(lif_graph(r=10.0, tau=1e-3), path)
    assert main(["info", str(path)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "looks written by snntorch" in text and "snnx import --from snntorch" in text


def test_a_crashing_profile_is_reported_naming_it(install_plugin, tmp_path, capfd):
    install_plugin(
        "snnx_test_interop_crash",
        """
        from snnx import hookimpl
        from snnx.interop import Profile

        class Broken(Profile):
            name = "broken"

            def import_(self, graph, assume):
                return 1 / 0

        @hookimpl
        def snnx_register_interop(register):
            register(Broken())
        """,
    )
    out = tmp_path / "out.nir"
    rc = main(["import", str(CASES_DIR / "lif_chain.nir"), "--from", "broken", "-o", str(out)])
    err = capfd.readouterr().err
    assert rc == 2 and not out.exists() and err.count("\n") == 1
    assert "interop profile 'broken' (plugin 'snnx_test_interop_crash') failed in import: ZeroDivisionError" in err


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("nirtorch_lif_norse.nir", "producer: norse ("),
        ("nirtorch_braille.nir", "producer: snntorch ("),
    ],
)
def test_auto_recognises_the_shared_samples(samples_dir, tmp_path, capsys, sample, expected):
    out = tmp_path / "out.nir"
    assert main(["import", str(samples_dir / sample), "--from", "auto", "-o", str(out)]) == 0
    assert expected in capsys.readouterr().out
    nir.read(out)


def test_the_malformed_rockpool_sample_is_refused_in_one_line(samples_dir, tmp_path, capfd):
    out = tmp_path / "out.nir"
    rc = main(["import", str(samples_dir / "rockpool_braille.nir"), "--from", "rockpool", "-o", str(out)])
    err = capfd.readouterr().err
    assert rc == 2 and not out.exists() and err.count("\n") == 1 and "Traceback" not in err
