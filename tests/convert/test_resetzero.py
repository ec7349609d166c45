"""``snnx convert --steps T --integer 8 --target loihi``: scales fitted to the reset-to-zero neuron
(``snnx.convert.resetzero``) beat the unfitted Loihi graph on held-out data, and ``lava`` still runs the
fitted integer graph spike for spike like the reference (measured in ``benchmarks/loihi_integer.py``)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from test_convert_cli import convert_argv

import snnx
from snnx.api import check, prepare
from snnx.ir.reference import simulate
from snnx.ir.semantics import reset_of, v_init_of

STEPS = 8


def assert_integer_loihi_graph(graph: nir.NIRGraph) -> None:
    """What ``--integer --target loihi`` writes: IF reset to zero from zero state, one threshold per
    population, and every weight, bias and threshold an integer."""
    for node in (n for n in graph.nodes.values() if isinstance(n, nir.IF)):
        assert reset_of(node) == "value" and not np.any(v_init_of(node))
        assert np.ptp(node.v_threshold) == 0
    for node in graph.nodes.values():
        for attr in ("weight", "bias", "v_threshold"):
            value = getattr(node, attr, None)
            if value is not None:
                assert np.array_equal(np.asarray(value), np.rint(np.asarray(value))), (attr, node)


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory, digits, digits_mlp_onnx):
    """The small trained digits MLP, 300 calibration images, and the 397 held-out test images."""
    xtr, _ytr, xte, yte = digits
    tmp = tmp_path_factory.mktemp("resetzero")
    np.savez(tmp / "calib.npz", x=xtr[:300])
    return tmp, digits_mlp_onnx, xte, yte


@pytest.fixture(scope="module")
def fitted(mlp_files):
    """``snnx convert --steps 8 --integer 8 --target loihi`` of the MLP: (graph, printed lines)."""
    import contextlib
    import io

    from snnx.cli import main

    tmp, path, _x, _y = mlp_files
    target = tmp / "fitted.nir"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(convert_argv(path, target, tmp / "calib.npz", "--steps", STEPS, "--integer", "8", "--target", "loihi"))
    assert code == 0, out.getvalue()
    return snnx.load(target), out.getvalue()


def _accuracy(graph, x, y, steps):
    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    xs = np.broadcast_to(x.astype(np.float64)[None], (max(steps), *x.shape))
    trace = simulate(prepared, {inp: xs}, record=True)[out]
    return [float(np.mean(trace[t - 1].reshape(len(y), -1).argmax(1) == y)) for t in steps]


@pytest.mark.slow
def test_fit_beats_the_unfitted_loihi_graph_on_held_out_data(mlp_files, fitted):
    from snnx.convert import convert
    from snnx.convert.targets import retarget
    from snnx.convert.tuning import apply_tuning

    tmp, path, xte, yte = mlp_files
    fitted, out = fitted
    line = next(ln for ln in out.splitlines() if "fitted to the reset-to-zero neuron" in ln)
    before, after = (float(v) for v in line.split("MSE) ")[1].split(" (")[0].split(" → "))
    assert after < before
    assert_integer_loihi_graph(fitted)
    # The same conversion without the fit: what --steps --integer --target loihi wrote before it, plus the
    # output gains (snnx.convert.rategain) that --target loihi fits when the --steps fit does not run.
    calib = np.load(tmp / "calib.npz")["x"]
    unfitted = convert(str(path), calib, steps=STEPS)
    assert not any("reset-to-zero" in ln for ln in apply_tuning(unfitted, {"integer_bits": 8}, str(path), target="loihi", calib=calib))
    plain = retarget(unfitted, "loihi").graph
    # 397 images the fit never saw (calibration: the first 300 training images); labels only here.
    got = _accuracy(fitted, xte, yte, (STEPS, 2 * STEPS))
    base = _accuracy(plain, xte, yte, (STEPS, 2 * STEPS))
    assert got[0] >= base[0] + 0.01, (got, base)
    assert got[1] >= base[1] - 0.005, (got, base)


@pytest.mark.slow
@pytest.mark.lava
def test_fitted_integer_graph_runs_spike_identically_on_lava(mlp_files, fitted):
    from snnx.plugins import get_backend

    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed (snnx install lava)")
    _tmp, _path, xte, _y = mlp_files
    graph, _out = fitted
    prepared = prepare(graph)
    (inp,) = prepared.input_names
    x = np.broadcast_to(xte[:4].astype(np.float64)[None], (STEPS, 4, 1, 8, 8))
    (result,) = check(prepared, ["lava"], {inp: x})
    assert result.status == "agree", result
    assert result.spike_mismatches == 0 and result.spikes_total > 50
    (out_name,) = prepared.output_names
    assert result.per_output[out_name]["max_abs_error"] == 0.0


def test_fit_leaves_the_max_tree_alone(small, capsys):
    """A MaxPool tree's populations see whole spikes through fixed ±1 weights: only the ANN's layers
    are fitted, and the tree still makes an integer graph (its spike edges get integer gains)."""
    from test_convert_cli import run

    tmp, path = small
    x = np.load(tmp / "calib.npz")["x"]
    np.savez(tmp / "calib16.npz", x=np.round(x * 16) / 16)
    argv = convert_argv(path, tmp / "m.nir", tmp / "calib16.npz", "--steps", STEPS, "--integer", "8", "--target", "loihi")
    code, out, err = run(argv, capsys)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "fitted to the reset-to-zero neuron" in ln)
    fitted = [part.split(" s=")[0].strip() for part in line.rsplit(" (", 1)[1].split(",")]
    graph = snnx.load(tmp / "m.nir")
    ifs = [n for n, node in graph.nodes.items() if isinstance(node, nir.IF)]
    assert len(fitted) == 1 and fitted[0] in ifs and len(ifs) > 1  # the conv; not the tree's populations


def _readout(graph, x, steps):
    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    xs = np.broadcast_to(x.astype(np.float64)[None], (steps, *x.shape))
    return simulate(prepared, {inp: xs}, record=True)[out][steps - 1].reshape(len(x), -1) / steps


@pytest.mark.slow
@pytest.mark.lava
def test_loihi_finetune_trains_through_reset_to_zero_and_beats_the_fit_alone(mlp_files, fitted, digits, capsys):
    """``--finetune --target loihi`` after the fit: on 397 images neither stage saw, its integer Loihi graph's
    readout is closer to the ANN's logits at ``T = 8`` (and on average over ``T`` and ``2T``) than the fit
    alone's, and ``lava`` deploys it at scale 1 spike for spike. (Its class agreement with the ANN at
    ``T = 8`` is not asserted: on this small MLP it fell from 87.9 to 87.4 %, ``specs/conversion.md`` §8.)"""
    from test_convert_cli import run

    from snnx.convert.evaluate import ann_logits
    from snnx.convert.resetzero import readout_error
    from snnx.plugins import get_backend

    tmp, path, xte, _yte = mlp_files
    xtr, ytr, _x, _y = digits
    np.savez(tmp / "train.npz", x=xtr, y=ytr)
    argv = convert_argv(
        path, tmp / "tuned.nir", tmp / "calib.npz", "--steps", STEPS, "--integer", "8", "--target", "loihi",
        "--finetune", tmp / "train.npz",
    )
    code, out, err = run(argv, capsys)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "fine-tuned through the reset-to-zero neuron" in ln)
    assert "held-out (280 samples, int8 Loihi graph)" in line
    tuned = snnx.load(tmp / "tuned.nir")
    plain, _ = fitted
    assert_integer_loihi_graph(tuned)
    changed = [n for n, node in tuned.nodes.items() if isinstance(node, nir.Affine)
               and not np.array_equal(node.weight, plain.nodes[n].weight)]
    assert "kept epoch 0" in line or changed, line
    logits = ann_logits(path, xte.astype(np.float32))
    logits = logits - logits.mean(1, keepdims=True)
    # Closeness to the ANN (the criterion trained and selected on) on images neither stage saw, at T and 2T.
    error = {
        name: [readout_error(_readout(graph, xte, t), logits) for t in (STEPS, 2 * STEPS)]
        for name, graph in (("tuned", tuned), ("fit", plain))
    }
    assert error["tuned"][0] < error["fit"][0] and np.mean(error["tuned"]) < np.mean(error["fit"]), (error, line)
    lava = get_backend("lava")
    if lava.missing_requirements():
        pytest.skip("Lava not installed (snnx install lava)")
    prepared = prepare(tuned)
    report = lava.lower(prepared, exact=True).report()  # refuses a layer it would have to re-quantise
    assert report.count("scale=1 ") == 3, report
    (inp,) = prepared.input_names
    x = np.broadcast_to(xte[:4].astype(np.float64)[None], (STEPS, 4, 1, 8, 8))
    (result,) = check(prepared, ["lava"], {inp: x})
    assert result.status == "agree" and result.spike_mismatches == 0 and result.spikes_total > 50, result


def test_integer_grid_is_the_grid_integer_rounds_to(tmp_path):
    """The fine-tuner's straight-through rounding uses the grid ``--integer --target loihi`` writes: every
    float weight and bias rounded on it, times ``r·θ/(θ₀·k)``, is the integer graph's value (AvgPool's
    ``k`` folded in)."""
    import torch
    from convert_oracle import export
    from torch import nn

    from snnx.convert import convert
    from snnx.convert.finetune_loihi import integer_grid
    from snnx.convert.integer import integerise
    from snnx.convert.targets import integer_options

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    x = np.round(np.random.default_rng(0).uniform(size=(40, 1, 4, 4)) * 16).astype(np.float32) / 16
    result = convert(export(model, x), x, steps=STEPS)
    trainable = {n for n, op in result.origin.items() if op in ("Conv", "Gemm") and n in result.graph.nodes}
    options, _ = integer_options(result.graph, "loihi", 8, x)
    grid = integer_grid(result, trainable, 8, options)
    integer = __import__("copy").deepcopy(result.graph)
    integerise(integer, 8, **options)
    assert len(trainable) == 2
    for name in trainable:
        w_step, b_step = grid[name]
        node, want = result.graph.nodes[name], integer.nodes[name]
        assert np.array_equal(np.clip(np.rint(node.weight / w_step), -127, 127), want.weight), name
        assert np.array_equal(np.rint(node.bias / b_step), want.bias), name


def test_loihi_finetune_refuses_too_few_samples_to_hold_out(small, capsys):
    from test_convert_cli import run

    tmp, path = small
    data = np.load(tmp / "test.npz")
    np.savez(tmp / "few.npz", x=data["x"][:6], y=data["y"][:6])
    argv = convert_argv(path, tmp / "m.nir", tmp / "calib.npz", "--steps", STEPS, "--target", "loihi", "--finetune", tmp / "few.npz")
    code, _out, err = run(argv, capsys)
    assert code == 2
    assert "--finetune: 6 labelled samples" in err and "at least 10" in err and "Traceback" not in err
