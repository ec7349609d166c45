"""``snnx convert --integer K --target loihi``: an all-integer graph that ``lava`` deploys at scale 1 and
runs spike for spike like the reference (issues 12 and 15; measured in ``benchmarks/loihi_integer.py``)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from test_convert_cli import convert_argv, run

import snnx
from snnx.api import check, prefix, prepare
from snnx.convert.targets import LOIHI_BIAS_MAX, LOIHI_VTH_MAX, input_fraction_bits
from snnx.ir.reference import simulate
from snnx.ir.semantics import reset_of, v_init_of


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory, digits, digits_mlp_onnx):
    """The small trained digits MLP as ONNX, with calibration (k/16 pixels: 4 fractional bits) data."""
    xtr, _ytr, xte, _yte = digits
    tmp = tmp_path_factory.mktemp("integer_loihi")
    np.savez(tmp / "calib.npz", x=xtr[:200])
    return tmp, digits_mlp_onnx, xte


def _convert(digits_files, capsys, *extra):
    tmp, path, _x = digits_files
    target = tmp / f"m{len(extra)}.nir"
    code, out, err = run(convert_argv(path, target, tmp / "calib.npz", "--integer", "8", "--target", "loihi", *extra), capsys)
    assert code == 0, err
    return snnx.load(target), out


def test_integer_loihi_graph_is_integer_within_loihi_formats(digits_files, capsys):
    graph, out = _convert(digits_files, capsys)
    assert "one threshold per population" in out and "multiples of 2^-4" in out
    for name, node in graph.nodes.items():
        for attr in ("weight", "bias", "v_threshold", "r"):
            value = getattr(node, attr, None)
            if value is not None:
                assert np.array_equal(np.asarray(value), np.rint(np.asarray(value))), (name, attr)
        if isinstance(node, (nir.Affine, nir.Linear)):
            assert np.abs(node.weight).max() <= 127
    ifs = {k: n for k, n in graph.nodes.items() if isinstance(n, nir.IF)}
    assert len(ifs) == 2
    for node in ifs.values():
        assert np.ptp(node.v_threshold) == 0  # Loihi's threshold is one per layer
        assert reset_of(node) == "value" and not np.any(v_init_of(node))
    first = next(n for n in prepare(graph).schedule.order if n in ifs)
    # Loihi's threshold has 17 bits and its bias 13; the first layer's grow by 2**4 for the graded input.
    for name, node in ifs.items():
        shift = 4 if name == first else 0
        (synapse,) = [a for a, b in graph.edges if b == name]
        assert node.v_threshold.max() <= LOIHI_VTH_MAX >> shift
        assert np.abs(graph.nodes[synapse].bias).max() <= LOIHI_BIAS_MAX >> shift


def test_integer_loihi_refuses_more_than_8_bits_and_signed(digits_files, capsys):
    tmp, path, _x = digits_files
    target = tmp / "refused.nir"
    code, _out, err = run(convert_argv(path, target, tmp / "calib.npz", "--integer", "9", "--target", "loihi"), capsys)
    assert code == 2 and "8-bit" in err and "--integer 8" in err and not target.exists()
    code, _out, err = run(convert_argv(path, target, tmp / "calib.npz", "--signed", "--target", "loihi"), capsys)
    assert code == 2 and "no negative spikes" in err and not target.exists()


def test_integer_loihi_leaves_room_for_8_input_bits_when_the_inputs_are_not_dyadic(digits_files, capsys):
    tmp, path, _x = digits_files
    x = np.load(tmp / "calib.npz")["x"]
    np.savez(tmp / "calib255.npz", x=np.round(x * 255) / 255 + 1e-3)
    target = tmp / "m255.nir"
    code, out, err = run(convert_argv(path, target, tmp / "calib255.npz", "--integer", "8", "--target", "loihi"), capsys)
    assert code == 0, err
    assert "not multiples of 2^-8" in out and "quantise the inputs" in out
    graph = snnx.load(target)
    first = next(n for n in prepare(graph).schedule.order if isinstance(graph.nodes[n], nir.IF))
    assert graph.nodes[first].v_threshold.max() <= LOIHI_VTH_MAX >> 8


def test_integer_refuses_a_population_whose_biases_fit_no_threshold(digits_files):
    from snnx.convert import convert
    from snnx.convert.integer import integerise
    from snnx.errors import ConversionError

    tmp, path, _x = digits_files
    result = convert(str(path), np.load(tmp / "calib.npz")["x"])
    graph = result.graph
    first = next(n for n in prepare(graph).schedule.order if isinstance(graph.nodes[n], nir.IF))
    biased = next(a for a, b in graph.edges if b == first)
    node = graph.nodes[biased]
    # Two thresholds' worth of bias per step rounds to at least 2 at every integer threshold: a target
    # whose bias mantissa holds 0 cannot take it (one error naming the node); one holding 4095 can.
    node.bias = np.full(np.shape(node.bias), 2.0) / float(np.max(graph.nodes[first].r))
    with pytest.raises(ConversionError, match=f"{first}.*biases are too large"):
        integerise(graph, 8, per_channel=False, limits={first: (LOIHI_VTH_MAX, 0.0, np.inf)})
    integerise(graph, 8, per_channel=False, limits={first: (LOIHI_VTH_MAX, LOIHI_BIAS_MAX, np.inf)})


def test_input_fraction_bits():
    assert input_fraction_bits(np.arange(17) / 16) == 4
    assert input_fraction_bits(np.array([0.0, 1.0, 3.0])) == 0
    assert input_fraction_bits(np.arange(256) / 255) is None


def test_prefix_graph_gives_the_layer_its_trace(digits_files, capsys):
    graph, _out = _convert(digits_files, capsys)
    prepared = prepare(graph)
    (inp,) = prepared.input_names
    x = np.broadcast_to(digits_files[2][:3].astype(np.float64)[None], (6, 3, 1, 8, 8))
    record = simulate(prepared, {inp: x}, record=True)
    for name in (n for n, node in graph.nodes.items() if isinstance(node, nir.IF)):
        part = prefix(prepared, name)
        (out,) = part.output_names
        assert set(part.nodes) < set(prepared.nodes) | {out}
        np.testing.assert_array_equal(simulate(part, {inp: x})[out], record[name])


@pytest.mark.slow
@pytest.mark.lava
def test_integer_loihi_graph_runs_spike_identically_on_lava(digits_files, capsys):
    from snnx.plugins import get_backend

    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed (snnx install lava)")
    tmp, _path, xte = digits_files
    graph, _out = _convert(digits_files, capsys)
    prepared = prepare(graph)
    # Deployed without re-quantising: every layer at scale 1 and exact.
    model = lava.lower(prepared, exact=True)
    assert [q.scale for q in model.quantisation] == [1.0] * 3 and all(q.exact for q in model.quantisation)
    code, out, err = run(["lower", str(tmp / "m0.nir"), "--to", "lava", "-o", str(tmp / "m.net")], capsys)
    assert code == 0, err
    assert out.count("scale=1 ") == 3 and out.count("exact=yes") == 3
    (inp,) = prepared.input_names
    x = np.broadcast_to(xte[:4].astype(np.float64)[None], (8, 4, 1, 8, 8))
    (result,) = check(prepared, ["lava"], {inp: x})
    assert result.status == "agree", result
    assert result.spike_mismatches == 0 and result.spikes_total > 100
    hidden = [n for n, node in graph.nodes.items() if isinstance(node, nir.IF)]
    assert set(hidden) < set(result.compared)  # every hidden layer, through its prefix graph
    assert all(result.per_output[h]["spikes"] > 0 for h in hidden)
    (out_name,) = prepared.output_names
    assert result.per_output[out_name]["max_abs_error"] == 0.0  # the probed integer readout
