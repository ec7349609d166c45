"""snnx.metrics: spike and SOP counts against hand-counted graphs, fan-out against brute force, energy
against the cited constants."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

import snnx.metrics as M
from snnx.errors import SnnxError, ValidationError
from snnx.ir.ops import conv_nd, sum_pool
from snnx.ir.semantics import set_graph_contract, set_node_contract


def _if(n: int, threshold: float = 0.5) -> nir.IF:
    return set_node_contract(
        nir.IF(r=np.ones(n), v_threshold=np.full(n, threshold), v_reset=np.zeros(n)), reset="subtract"
    )


def _dense_graph() -> nir.NIRGraph:
    """in(2) -> Linear(3x2) -> IF(3) -> Affine(4x3) -> out, dt = 1 so that v += x."""
    w = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    g = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=w),
            "if": _if(3),
            "head": nir.Affine(weight=np.ones((4, 3)), bias=np.zeros(4)),
            "out": nir.Output(output_type=np.array([4])),
        },
        edges=[("in", "fc"), ("fc", "if"), ("if", "head"), ("head", "out")],
    )
    return set_graph_contract(g, dt=1.0)


SPIKES_IN = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float)[:, None, :]


def test_dense_spikes_and_sops_by_hand():
    s = M.stats(_dense_graph(), SPIKES_IN)
    by = {layer.name: layer for layer in s.layers}
    # input events 1+1+2+0 = 4, each reaches the 3 outputs of fc
    assert by["fc"].op_kind == "AC" and by["fc"].ops == 4 * 3
    # IF with subtract reset, threshold 0.5, currents W@x per step:
    # t0 [1,1,0] -> s [1,1,0], v [.5,.5,0]; t1 [0,1,0] -> v [.5,1.5,0] -> s [0,1,0], v [.5,1,0]
    # t2 [1,2,0] -> v [1.5,3,0] -> s [1,1,0], v [1,2.5,0]; t3 0 -> s [1,1,0]
    assert by["if"].spikes == 7
    assert by["if"].rate == pytest.approx(7 / (3 * 4))
    assert by["head"].op_kind == "AC" and by["head"].ops == 7 * 4
    assert s.sops == 12 + 28 and s.macs == 0
    assert s.ann_macs == 2 * 3 + 3 * 4
    assert s.neuron_updates == 3 * 4
    assert s.params == 6 + (3 * 3) + 12 + 4  # Linear, IF (r, v_th, v_reset), Affine w + b


def test_analog_input_counts_macs_on_nonzero_elements():
    x = SPIKES_IN * 0.7  # same pattern, analog values: the first layer multiplies
    s = M.stats(_dense_graph(), x)
    by = {layer.name: layer for layer in s.layers}
    assert by["fc"].op_kind == "MAC" and by["fc"].ops == 4 * 3
    assert s.macs == 12
    forced = M.stats(_dense_graph(), SPIKES_IN, spiking_inputs=False)
    assert {layer.name: layer.op_kind for layer in forced.layers}["fc"] == "MAC"


def test_batch_is_averaged_per_sample():
    x = np.concatenate([SPIKES_IN, np.zeros_like(SPIKES_IN)], axis=1)  # second sample silent
    s = M.stats(_dense_graph(), x)
    assert s.batch == 2
    assert {layer.name: layer for layer in s.layers}["if"].spikes == 3.5


def _conv_graph(stride: int, padding: int, n: int, pool: bool) -> nir.NIRGraph:
    w = np.ones((2, 1, 3, 3))
    side = n // 2 if pool else n
    m = (side + 2 * padding - 3) // stride + 1
    nodes = {
        "in": nir.Input(input_type=np.array([1, n, n])),
        "conv": nir.Conv2d(input_shape=(n, n), weight=w, stride=stride, padding=padding, dilation=1, groups=1, bias=np.zeros(2)),
        "out": nir.Output(output_type=np.array([2, m, m])),
    }
    edges = [("in", "conv"), ("conv", "out")]
    if pool:
        nodes = {
            "in": nodes["in"],
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "conv": nir.Conv2d(input_shape=(n // 2, n // 2), weight=w, stride=stride, padding=padding, dilation=1, groups=1, bias=np.zeros(2)),
            "out": nodes["out"],
        }
        edges = [("in", "pool"), ("pool", "conv"), ("conv", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_conv_fan_out_border_effects_by_hand():
    # 3x3 input, 3x3 kernel, padding 1, stride 1: per dim positions are covered by 2, 3, 2 windows
    fo = M.fan_out(nir.Conv2d(None, np.ones((2, 1, 3, 3)), 1, 1, 1, 1, np.zeros(2)), (1, 3, 3), (2, 3, 3))
    assert fo[0].tolist() == [[8, 12, 8], [12, 18, 12], [8, 12, 8]]  # x2 output channels
    # 5 wide, stride 2, padding 1: windows [-1..1], [1..3], [3..5] -> counts 1 2 1 2 1
    fo = M.fan_out(nir.Conv2d(None, np.ones((1, 1, 3, 3)), 2, 1, 1, 1, np.zeros(1)), (1, 5, 5), (1, 3, 3))
    assert fo[0, 0].tolist() == [1, 2, 1, 2, 1]
    assert fo[0, 1].tolist() == [2, 4, 2, 4, 2]


def test_conv_sops_on_one_spike_in_a_corner_and_centre():
    g = _conv_graph(stride=1, padding=1, n=3, pool=False)
    x = np.zeros((2, 1, 1, 3, 3))
    x[0, 0, 0, 0, 0] = 1  # corner: touches 2x2 output positions in each of 2 channels
    x[1, 0, 0, 1, 1] = 1  # centre: 3x3 positions x 2 channels
    s = M.stats(g, x)
    conv = {layer.name: layer for layer in s.layers}["conv"]
    assert conv.op_kind == "AC" and conv.ops == 8 + 18
    assert conv.ann_ops == 2 * (2 + 3 + 2) ** 2  # padding taps excluded: 98, not 2*9*9


def test_pool_of_spikes_counts_each_spike_per_target():
    g = _conv_graph(stride=1, padding=1, n=4, pool=True)
    x = np.zeros((1, 1, 1, 4, 4))
    x[0, 0, 0, 0, 0] = x[0, 0, 0, 0, 1] = 1  # two spikes in the same 2x2 pool window (top-left)
    s = M.stats(g, x)
    by = {layer.name: layer for layer in s.layers}
    assert by["pool"].ops == 2  # each spike into one window
    # the pooled count 2 sits at a corner of the 2x2 map: 2x2 conv positions x 2 channels, twice
    assert by["conv"].op_kind == "AC" and by["conv"].ops == 2 * 8


@pytest.mark.parametrize(
    ("n", "k", "stride", "padding", "dilation", "groups"),
    [(5, 3, 1, 0, 1, 1), (6, 3, 2, 1, 1, 2), (7, 2, 3, 2, 1, 1), (8, 3, 1, 2, 2, 2), (5, 4, 1, "same", 1, 1)],
)
def test_conv_fan_out_matches_brute_force(n, k, stride, padding, dilation, groups):
    c_in, c_out = 2 * groups, 3 * groups
    node = nir.Conv2d(None, np.ones((c_out, c_in // groups, k, k)), stride, padding, dilation, groups, np.zeros(c_out))
    from snnx.ir.shapes import conv

    out_shape = conv(2)("c", node, (c_in, n, n))
    fo = M.fan_out(node, (c_in, n, n), out_shape)
    eye = np.eye(c_in * n * n).reshape(-1, c_in, n, n)  # one-hot per input element
    touched = (conv_nd(eye, node, 2) != 0).reshape(len(eye), -1).sum(axis=1)
    assert fo.reshape(-1).tolist() == touched.tolist()


def test_pool_fan_out_matches_brute_force():
    node = nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1]))
    fo = M.fan_out(node, (1, 6, 6), (1, 3, 3))
    eye = np.eye(36).reshape(-1, 1, 6, 6)
    touched = (sum_pool(node, eye) != 0).reshape(36, -1).sum(axis=1)
    assert fo.reshape(-1).tolist() == touched.tolist()


def test_fan_out_of_non_synaptic_node_is_an_error():
    with pytest.raises(ValidationError, match="not a synaptic layer"):
        M.fan_out(_if(2), (2,), (2,))


def test_energy_traces_to_the_cited_constants():
    s = M.stats(_dense_graph(), SPIKES_IN)
    cmos = s.energy["cmos45"]
    assert M.HOROWITZ_45NM["fp32"].ac_pj == 0.9 and M.HOROWITZ_45NM["fp32"].mac_pj == pytest.approx(4.6)
    assert cmos.snn_pj == pytest.approx(40 * 0.9)
    assert cmos.ann_pj == pytest.approx(18 * (3.7 + 0.9))
    assert cmos.ratio == pytest.approx(18 * 4.6 / 36)
    loihi = s.energy["loihi"]
    assert loihi.snn_pj == pytest.approx(40 * 23.6 + 12 * 52.0 + 7 * 1.7)
    int8 = M.stats(_dense_graph(), SPIKES_IN, precision="int8")
    assert int8.energy["cmos45"].snn_pj == pytest.approx(40 * 0.03)
    assert int8.param_bytes == int8.params and int8.state_bytes == 3


def test_memory_counts_parameters_and_state():
    s = M.stats(_dense_graph(), SPIKES_IN)
    assert s.state == 3 and s.state_bytes == 12
    assert s.param_bytes == 4 * s.params


def test_traces_from_elsewhere_fill_in_stateless_nodes():
    g = _dense_graph()
    full = M.stats(g, SPIKES_IN)
    from snnx.ir.reference import simulate

    rec = simulate(g, SPIKES_IN, record=True)
    partial = M.stats(g, traces={"in": rec["in"], "if": rec["if"]})
    assert partial.to_dict() == full.to_dict()
    with pytest.raises(ValidationError, match="no trace for node 'if'"):
        M.stats(g, traces={"in": rec["in"]})


def test_stats_errors_and_json():
    g = _dense_graph()
    with pytest.raises(SnnxError, match="give inputs"):
        M.stats(g)
    with pytest.raises(SnnxError, match="precision"):
        M.stats(g, SPIKES_IN, precision="fp64")
    d = M.stats(g, SPIKES_IN).to_dict()
    assert json.loads(json.dumps(d))["totals"]["sops"] == 40


def test_trace_module_matches_reference_on_a_torch_backend():
    pytest.importorskip("torch")
    import snnx

    names = [n for n in ("norse", "snntorch", "spikingjelly") if n in snnx.get_backends()]
    usable = [n for n in names if not snnx.get_backend(n).refusals(snnx.api.prepare(_dense_graph()))]
    if not usable:
        pytest.skip("no torch backend installed")
    model = snnx.lower(_dense_graph(), to=usable[0])
    _, traces = M.trace_module(model, SPIKES_IN.astype(np.float32))
    assert M.stats(_dense_graph(), traces=traces).sops == 40


def test_recurrent_edge_counts_the_previous_step():
    """in(1) -> fc -> IF -> out, IF -> fc closes the cycle: fc sees the IF's spike one step later."""
    g = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([1])),
            "fc": nir.Linear(weight=np.ones((1, 1))),
            "if": _if(1),
            "out": nir.Output(output_type=np.array([1])),
        },
        edges=[("in", "fc"), ("fc", "if"), ("if", "fc"), ("if", "out")],
    )
    g = set_graph_contract(g, dt=1.0)
    x = np.zeros((3, 1, 1))
    x[2] = 1.0  # input and IF spike at the last step; the recurrent copy would arrive at t = 3
    by = {layer.name: layer for layer in M.stats(g, x).layers}
    assert by["if"].spikes == 1
    assert by["fc"].ops == 1
    x[1] = 1.0  # t=1: input spike, IF spikes; t=2: input + the recurrent spike (2 events), IF spikes
    by = {layer.name: layer for layer in M.stats(g, x).layers}
    assert by["if"].spikes == 2
    assert by["fc"].ops == 1 + 2


def test_stats_command_json_and_table(tmp_path, capsys):
    import snnx
    from snnx.cli import main

    path = tmp_path / "g.nir"
    snnx.save(_dense_graph(), str(path))
    np.savez(tmp_path / "x.npz", x=SPIKES_IN)
    assert main(["stats", str(path), "--input", str(tmp_path / "x.npz"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["sops"] == 40 and data["energy"]["cmos45"]["snn_pj"] == pytest.approx(36.0)
    assert main(["stats", str(path), "--random", "5", "--batch", "2"]) == 0
    assert "SOPs (AC)" in capsys.readouterr().out
    assert main(["stats", str(path)]) == 2  # neither --input nor --random
    assert main(["stats", str(tmp_path / "missing.nir"), "--random", "3"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_every_synaptic_kind_has_a_fan_out_rule():
    # metrics reads the node-kind table: a new weighted kind needs its geometry rule, pools a factor.
    from snnx.ir.nodes import KINDS, WEIGHTED_KINDS
    from snnx.metrics.geometry import FAN_OUT, POOLS

    assert set(FAN_OUT) == set(WEIGHTED_KINDS)
    assert set(POOLS) <= set(WEIGHTED_KINDS)
    assert {k for k, kind in KINDS.items() if kind.spike_output} == {"IF", "LIF", "CubaLIF", "Threshold"}
