"""docs/interop.md's round trip, run: snnTorch -> snnx import -> snnx export -> Norse, spike for spike."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interop_round_trip.py"


@pytest.mark.slow
def test_snntorch_to_snnx_to_norse_round_trip(tmp_path, capsys):
    pytest.importorskip("snntorch")
    pytest.importorskip("norse")
    spec = importlib.util.spec_from_file_location("interop_round_trip", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("100.00% of 2000 values agree") == 3
