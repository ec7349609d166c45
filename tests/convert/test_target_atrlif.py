"""``snnx convert --target loihi-atrlif``: the target-any graph (reset subtract) for Loihi 2's ATRLIF
neuron, whose integer graph keeps every threshold within ``ATRLIF_THETA_MAX`` (``>> e``
for the layer that reads the graded input)."""

from __future__ import annotations

import copy

import nir
import numpy as np
import pytest
from test_convert_cli import convert_argv

import snnx
from snnx.cli import main
from snnx.convert.targets import (
    ATRLIF_THETA_MAX,
    LOIHI_BIAS_MAX,
    LOIHI_VTH_MAX,
    _reads_input,
    input_fraction_bits,
    integer_options,
    retarget,
)
from snnx.errors import ConversionError
from snnx.ir.semantics import reset_of, v_init_of


def test_integer_mlp_fits_atrlif(tmp_path, digits, digits_mlp_onnx, capsys) -> None:
    """``--integer 8 --target loihi-atrlif``: integer weights and thresholds, reset subtract, one threshold
    per population, each within ATRLIF's register (and its bias within Loihi's, both ``>> e`` at the input)."""
    xtr, *_ = digits
    np.savez(tmp_path / "calib.npz", x=xtr[:200])
    target = tmp_path / "o.nir"
    code = main(convert_argv(digits_mlp_onnx, target, tmp_path / "calib.npz", "--integer", "8", "--target", "loihi-atrlif"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "target loihi-atrlif: 2 IF populations keep reset 'subtract'" in out
    assert "one threshold per population" in out
    e = input_fraction_bits(xtr[:200])
    assert e == 4  # digits are multiples of 1/16
    graph = snnx.load(target)
    populations = [name for name, node in graph.nodes.items() if isinstance(node, nir.IF)]
    assert len(populations) == 2
    first = [name for name in populations if _reads_input(graph, name)]
    assert len(first) == 1
    for name, node in graph.nodes.items():
        for field in ("weight", "bias"):
            value = np.asarray(getattr(node, field, 0.0), dtype=np.float64)
            np.testing.assert_array_equal(value, np.rint(value), err_msg=f"{name}.{field}")
        if name in populations:
            shift = e if name in first else 0
            th = np.asarray(node.v_threshold, dtype=np.float64)
            assert reset_of(node) == "subtract"
            assert np.unique(th).size == 1, name
            assert np.all(th == np.rint(th)) and np.all(th >= 1), name
            assert th.max() <= ATRLIF_THETA_MAX >> shift, (name, th.max())
            assert th.max() % 2 == 0, f"{name}: ATRLIF's register holds half the threshold ({th.max()})"
            # v_init as target any's integer graph writes it: half the threshold (even: exactly half)
            np.testing.assert_array_equal(np.broadcast_to(v_init_of(node), th.shape), th / 2)
    # The layer reading the input: its Affine's bias within Loihi's bias mantissa >> e.
    (affine,) = [src for src, dst in graph.edges if dst == first[0]]
    assert np.abs(graph.nodes[affine].bias).max() <= LOIHI_BIAS_MAX >> e


def test_integer_options_bound_thresholds_by_atrlif(digits, digits_mlp_onnx) -> None:
    xtr, *_ = digits
    result = snnx.convert(str(digits_mlp_onnx), xtr[:64])
    options, notes = integer_options(result.graph, "loihi-atrlif", 8, xtr[:64])
    loihi, _ = integer_options(result.graph, "loihi", 8, xtr[:64])
    assert options["per_channel"] is False and len(notes) == 1 and "target loihi-atrlif" in notes[0]
    ths = {name: lim[0] for name, lim in options["limits"].items() if isinstance(result.graph.nodes[name], nir.IF)}
    assert sorted(ths.values()) == [ATRLIF_THETA_MAX >> 4, ATRLIF_THETA_MAX]
    assert sorted(lim[0] for name, lim in loihi["limits"].items() if name in ths) == [LOIHI_VTH_MAX >> 4, LOIHI_VTH_MAX]
    with pytest.raises(ConversionError, match="loihi-atrlif"):
        integer_options(result.graph, "loihi-atrlif", 9, xtr[:64])


@pytest.mark.parametrize("flag", ["--signed", "--half-threshold-init"])
def test_cli_refuses_signed_and_half_threshold_init(small, capsys, flag) -> None:
    tmp, model = small
    target = tmp / "o.nir"
    code = main(convert_argv(model, target, tmp / "calib.npz", "--target", "loihi-atrlif", flag))
    _out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert flag in err
    assert not target.exists()


def test_retarget_keeps_reset_subtract_and_refuses_leaky_populations(small) -> None:
    tmp, model = small
    result = snnx.convert(str(model), str(tmp / "calib.npz"))
    kept = retarget(result, "loihi-atrlif")
    spiking = [name for name, node in result.graph.nodes.items() if isinstance(node, nir.IF)]
    assert spiking
    for name in spiking:
        before, after = result.graph.nodes[name], kept.graph.nodes[name]
        assert reset_of(after) == "subtract"
        np.testing.assert_array_equal(v_init_of(after), v_init_of(before))
        np.testing.assert_array_equal(after.v_threshold, before.v_threshold)
    assert kept.notes[-1].startswith(f"target loihi-atrlif: {len(spiking)} IF populations keep reset 'subtract'")
    assert kept.notes[:-1] == result.notes
    leaky = copy.deepcopy(result)
    name = spiking[0]
    node = leaky.graph.nodes[name]
    leaky.graph.nodes[name] = nir.LIF(
        tau=np.full_like(node.r, 10.0), r=node.r, v_leak=np.zeros_like(node.r), v_threshold=node.v_threshold
    )
    with pytest.raises(ConversionError, match=name):
        retarget(leaky, "loihi-atrlif")
