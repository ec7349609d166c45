"""Per-T metrics (snnx.metrics.windows, `snnx stats --timesteps`): signed spikes per neuron counted by
hand, windows against separate runs, the SNN-vs-ANN operation ratios by hand, and input errors."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import snnx
import snnx.metrics as M
from snnx.cli import main
from snnx.errors import ValidationError
from snnx.ir.prepare import prepare
from snnx.ir.reference import simulate
from snnx.ir.semantics import set_graph_contract, set_node_contract
from test_signed_spikes import signed_if_graph


#: v_init 0.5; inputs 1, 1, -1, -1, -1, 0.2 give the spikes +1, +1, -1, -1, 0, 0 (semantics.md §4:
#: v 1.5 fires, 1.5 fires, -0.5 takes back (n=1), -0.5 takes back (n=0), then n = 0 forbids it).
SIGNED_X = np.array([1, 1, -1, -1, -1, 0.2])[:, None, None]


def test_positive_and_negative_spikes_per_neuron_by_hand():
    s = M.stats(signed_if_graph(), SIGNED_X)
    assert s.spikes == 4 and s.negative_spikes == 2
    assert (s.positive_per_neuron, s.negative_per_neuron) == (2, 2)
    by_t = {t: M.stats(signed_if_graph(), SIGNED_X[:t]) for t in (1, 2, 3, 6)}
    assert [(by_t[t].positive_per_neuron, by_t[t].negative_per_neuron) for t in (1, 2, 3, 6)] == [
        (1, 0), (2, 0), (2, 1), (2, 2)
    ]


def test_stats_command_one_row_per_window(tmp_path, capsys):
    path = tmp_path / "signed.nir"
    snnx.save(signed_if_graph(), str(path))
    np.savez(tmp_path / "x.npz", x=SIGNED_X)
    assert main(["stats", str(path), "--input", str(tmp_path / "x.npz"), "--timesteps", "6,2,3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["windows"]
    assert [r["T"] for r in rows] == [2, 3, 6]
    assert [(r["positive_per_neuron"], r["negative_per_neuron"]) for r in rows] == [(2, 0), (2, 1), (2, 2)]
    assert rows[-1]["stats"]["totals"]["negative_spikes"] == 2
    # the human table has the same rows
    assert main(["stats", str(path), "--input", str(tmp_path / "x.npz"), "--timesteps", "2,3,6"]) == 0
    text = capsys.readouterr().out
    assert "spikes/neuron −" in text and "2.000" in text and "1.000" in text


def _dense_graph() -> nir.NIRGraph:
    """in(2) -> Linear(3x2) -> IF(3) -> Affine(4x3) -> out: 6 + 12 = 18 ANN MACs."""
    neuron = set_node_contract(
        nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5), v_reset=np.zeros(3)), reset="subtract"
    )
    g = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])),
            "if": neuron,
            "head": nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)),
            "out": nir.Output(output_type=np.array([4])),
        },
        edges=[("in", "fc"), ("fc", "if"), ("if", "head"), ("head", "out")],
    )
    return set_graph_contract(g, dt=1.0)


def test_operation_ratios_by_hand():
    # tests/test_metrics.py derives 40 SOPs (12 + 28) and 18 ANN MACs for these spikes
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float)[:, None, :]
    s = M.stats(_dense_graph(), x)
    assert (s.sops, s.macs, s.ann_macs, s.ann_source) == (40, 0, 18, "topology")
    assert s.sop_mac_ratio == pytest.approx(40 / 18)
    assert s.low_bit_ratio == pytest.approx(4 * 18 / 40)
    # analog input: fc does MACs on the 4 non-zero elements (3 targets each) -> 12 MACs. Currents W@0.7x,
    # threshold 0.5, subtract: t0 [.7,.7,0] -> 2 spikes, v [.2,.2]; t1 [0,.7] -> v [.2,.9] -> 1 spike;
    # t2 [.7,1.4] -> v [.9,1.8] -> 2; t3 -> v [.4,1.3] -> 1: 6 spikes x 4 targets = 24 SOPs in the head
    a = M.stats(_dense_graph(), 0.7 * x)
    assert (a.sops, a.macs) == (24, 12)
    assert a.low_bit_ratio == pytest.approx(4 * 18 / (24 + 4 * 12))
    # a given ANN count replaces the topology's, in the ratios and the energy
    given = M.stats(_dense_graph(), x, ann=M.AnnOps(macs=100, adds=10, source="onnx:m.onnx"))
    assert given.sop_mac_ratio == pytest.approx(40 / 100) and given.ann_source == "onnx:m.onnx"
    assert given.energy["cmos45"].ann_pj == pytest.approx(100 * 4.6 + 10 * 0.9)


def test_a_window_is_a_run_of_that_many_steps():
    rng = np.random.default_rng(1)
    x = (rng.random((12, 3, 2)) < 0.6).astype(float)
    prepared = prepare(_dense_graph())
    traces = simulate(prepared, {"in": x}, record=True)
    for t in (1, 5, 12):
        cut = M.stats(prepared, traces=M.cut(traces, t))
        alone = M.stats(_dense_graph(), x[:t])
        assert cut.to_dict() == alone.to_dict()


def test_static_input_is_repeated_and_short_inputs_are_refused(tmp_path, capfd):
    prepared = prepare(_dense_graph())
    static = np.array([[1.0, 0.5]])
    repeated = M.window_inputs(prepared, {"in": static}, 4)["in"]
    assert repeated.shape == (4, 1, 2) and np.all(repeated == static)
    path = tmp_path / "g.nir"
    snnx.save(_dense_graph(), str(path))
    np.savez(tmp_path / "short.npz", x=np.zeros((3, 1, 2)))
    code = main(["stats", str(path), "--input", str(tmp_path / "short.npz"), "--timesteps", "2,8"])
    err = capfd.readouterr().err
    assert code == 2 and "'in' has 3 steps" in err and "Traceback" not in err
    np.savez(tmp_path / "static.npz", x=static)
    assert main(["stats", str(path), "--input", str(tmp_path / "static.npz")]) == 2
    assert "pass --timesteps" in capfd.readouterr().err
    assert main(["stats", str(path), "--random", "4", "--timesteps", "4,x"]) == 2
    assert "positive integers" in capfd.readouterr().err
    assert main(["stats", str(path), "--random", "4", "--timesteps", "2,4", "--json"]) == 0
    assert [r["T"] for r in json.loads(capfd.readouterr().out)["windows"]] == [2, 4]


def test_predictions_follow_the_readout_kind():
    # An integrating readout (I) holds its evidence at the last step; spikes are counted.
    readout = nir.I(r=np.ones(2))
    set_node_contract(readout, v_init=0.0)
    g = set_graph_contract(
        nir.NIRGraph(
            nodes={"in": nir.Input(input_type=np.array([2])), "ro": readout, "out": nir.Output(output_type=np.array([2]))},
            edges=[("in", "ro"), ("ro", "out")],
        ),
        dt=1.0,
    )
    prepared = prepare(g)
    x = np.array([[3.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])[:, None, :]  # v: [3,0], [1,0], [1,2]
    traces = simulate(prepared, {"in": x}, record=True)
    assert [int(M.predictions(prepared, traces, "out", t)[0]) for t in (1, 2, 3)] == [0, 0, 1]
    assert M.accuracy(prepared, traces, np.array([1]), 3) == 1.0
    with pytest.raises(ValidationError, match="labels"):
        M.accuracy(prepared, traces, np.array([1, 0]), 3)
    # A spiking readout is counted over the window: IF (threshold 0.5, subtract) with inputs
    # [.6,.6,0] and [0,0,.6] spikes [1,1,0] and [0,0,1]: 2 against 1, though only the second fires last.
    neuron = set_node_contract(
        nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5), v_reset=np.zeros(2)), reset="subtract"
    )
    spiking = prepare(
        set_graph_contract(
            nir.NIRGraph(
                nodes={"in": nir.Input(input_type=np.array([2])), "if": neuron, "out": nir.Output(output_type=np.array([2]))},
                edges=[("in", "if"), ("if", "out")],
            ),
            dt=1.0,
        )
    )
    x = np.array([[0.6, 0.0], [0.6, 0.0], [0.0, 0.6]])[:, None, :]
    traces = simulate(spiking, {"in": x}, record=True)
    assert traces["out"][:, 0].tolist() == [[1, 0], [1, 0], [0, 1]]
    assert int(M.predictions(spiking, traces, "out", 3)[0]) == 0


def test_a_malformed_ann_entry_is_one_error(tmp_path, capfd):
    g = _dense_graph()
    g.metadata["snnx"]["ann"] = {"macs": "many", "adds": 0}
    path = tmp_path / "g.nir"
    snnx.save(g, str(path))
    assert main(["stats", str(path), "--random", "2"]) == 2
    err = capfd.readouterr().err
    assert "snnx.ann" in err and "--ann model.onnx" in err and "Traceback" not in err
    g.metadata["snnx"]["ann"] = {"macs": 30, "adds": 2, "model": "m.onnx"}
    assert M.ann_from_metadata(g) == M.AnnOps(macs=30, adds=2, source="metadata")


def test_windows_on_a_torch_backend_match_the_reference(tmp_path, capsys):
    # A backend records the stateful nodes only; the stateless readout (head, out) is recomputed.
    pytest.importorskip("torch")
    backend = next((b for b in ("snntorch", "norse", "spikingjelly") if b in snnx.get_backends()), None)
    if backend is None:
        pytest.skip("no torch backend")
    path = tmp_path / "g.nir"
    snnx.save(_dense_graph(), str(path))
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "x.npz", x=(rng.random((6, 5, 2)) < 0.5).astype(float))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, 5))
    argv = ["stats", str(path), "--input", str(tmp_path / "x.npz"), "--labels", str(tmp_path / "y.npy"),
            "--timesteps", "3,6", "--json"]
    rows = {}
    for b in ("reference", backend):
        assert main([*argv, "--backend", b]) == 0
        rows[b] = [{k: v for k, v in r.items() if k != "stats"} for r in json.loads(capsys.readouterr().out)["windows"]]
    assert rows["reference"] == rows[backend] and rows[backend][0]["accuracy"] is not None
