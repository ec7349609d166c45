"""``lava``'s ``weight_bits`` option: each connection as two 8-bit Loihi synapses (``snnx.plugins.loihi.precision``)."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest

from snnx.api import prepare
from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.ir.reference import simulate
from snnx.plugins import get_backend
from snnx.plugins.loihi import compat as lava_compat
from snnx.plugins.loihi.precision import unrolled
from snnx.plugins.loihi.quantise import split_weight

LAVA_REASON = lava_compat.lava_available()
needs_lava = pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)")
pytestmark = pytest.mark.lava

DT = 1e-3
#: 11 bits for the conv layer, 9 for the dense one (whose 256 inputs would overflow the 16-bit activation at 11).
SPLIT = {"*": 11, "if2": 9}


def _if(shape, th: float) -> nir.IF:
    return nir.IF(r=np.full(shape, 1 / DT), v_threshold=np.full(shape, th), v_reset=np.zeros(shape))


def dyadic_cnn(seed: int = 0) -> nir.NIRGraph:
    """Conv(2->4, 3x3) -> IF -> SumPool -> Flatten -> Affine(64->5) -> IF with weights ``k/256``: the conv's
    (``|k| <= 300``) exact with 11 bits, the composed pool + affine's (``|k| <= 140``) with 9, neither with
    Loihi's 8 (``k > 127``)."""
    rng = np.random.default_rng(seed)
    conv_w = rng.integers(-300, 301, (4, 2, 3, 3)) / 256
    conv = nir.Conv2d(input_shape=(8, 8), weight=conv_w, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(4))
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2, 8, 8])}), "conv": conv, "if1": _if((4, 8, 8), 1.0),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
            "fc": nir.Affine(weight=rng.integers(-140, 141, (5, 64)) / 256, bias=np.zeros(5)), "if2": _if((5,), 2.0),
            "out": nir.Output(output_type={"output": np.array([5])}),
        },
        edges=[("in", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
               ("if2", "out")],
        type_check=False,
    )
    graph.metadata = {"snnx": {"version": 1, "dt": DT}}
    return graph


def test_split_weight_recombines_into_two_8_bit_mantissas() -> None:
    for e in range(1, 9):
        w = np.arange(-127 << e, (127 << e) + 1)
        hi, lo = split_weight(w, e)
        np.testing.assert_array_equal(hi * 2**e + lo, w)
        assert hi.min() >= -127 and hi.max() <= 127
        assert lo.min() >= -(1 << (e - 1)) and lo.max() < 1 << (e - 1)


def test_unrolled_conv_is_the_convolution() -> None:
    """The dense matrix of an unrolled conv layer gives the reference's convolution of NIR-ordered input."""
    graph = prepare(dyadic_cnn())
    chain = get_backend("lava")._chain_refusals(graph)[0]
    conv = chain.layers[0]
    dense = unrolled(conv)
    x = (np.random.default_rng(1).random((3, 2, 8, 8)) < 0.5).astype(float)
    from snnx.ir.ops import conv_nd

    want = conv_nd(x, graph.graph.nodes["conv"], 2).reshape(3, -1)
    np.testing.assert_allclose(x.reshape(3, -1) @ dense.weight.T, want, atol=1e-12)


def test_weight_bits_option_is_checked() -> None:
    graph = prepare(dyadic_cnn())
    backend = get_backend("lava")
    for bad in (7, 17, "eleven", 10.5, {"conv": 11}):
        with pytest.raises(SnnxError, match="weight_bits"):
            backend.lower(graph, weight_bits=bad)
    model = backend.lower(graph, weight_bits={"if1": 11})
    rows = model.report().splitlines()
    assert "synapses=2 (hi<<3 + lo, 11-bit weights)" in rows[0] and "synapses=2" not in rows[1]
    assert "dense 256" in rows[0]  # the conv layer is unrolled to Dense: Lava's fixed_pt Conv ignores weight_exp
    # An 8-bit conv layer in a chain with split synapses is unrolled too: the chain runs as Dense processes.
    rows = backend.lower(graph, weight_bits={"if2": 9}).report().splitlines()
    assert "dense 256" in rows[0] and "synapses=2" not in rows[0] and "9-bit weights" in rows[1]


def test_split_model_cannot_be_saved_as_netx(tmp_path) -> None:
    backend = get_backend("lava")
    model = backend.lower(prepare(dyadic_cnn()), weight_bits=SPLIT)
    with pytest.raises(SnnxError, match="two 8-bit synapses per connection"):
        backend.save(model, str(tmp_path / "m.net"))


def test_activation_beyond_16_bits_is_refused_naming_the_layer() -> None:
    """64 inputs of weight 1 into a neuron of threshold 1/16 at 16 bits: 64 * 127 * 256 per step > 2**15."""
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([64])}), "fc": nir.Linear(weight=np.ones((2, 64))),
            "n": _if((2,), 1 / 16), "out": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("in", "fc"), ("fc", "n"), ("n", "out")],
    )
    graph.metadata = {"snnx": {"version": 1, "dt": DT}}
    with pytest.raises(UnsupportedNodeError, match=r"node 'n': with 16-bit weights .* 16-bit activation"):
        get_backend("lava").lower(prepare(graph), weight_bits=16)


@needs_lava
def test_two_synapses_give_the_reference_where_8_bit_weights_change_spikes() -> None:
    """The dyadic CNN on Lava's bit-accurate Loihi 2 model: with 8-bit weights the rounding changes spikes;
    with split weights (high synapse << e plus low synapse, into the same neuron; 11 and 9 bits) every layer
    is exact and the output equals the reference spike for spike."""
    graph = prepare(dyadic_cnn())
    x = (np.random.default_rng(2).random((24, 2, 2, 8, 8)) < 0.3).astype(float)
    ref = simulate(graph, {"in": x})["out"]
    assert ref.sum() > 20
    backend = get_backend("lava")
    with pytest.raises(UnsupportedNodeError, match="not exact"):
        backend.lower(graph, exact=True)
    coarse = backend.run(backend.lower(graph), {"in": x})["out"]
    assert not np.array_equal(coarse, ref)
    fine = backend.lower(graph, weight_bits=SPLIT, exact=True)
    assert [q.weight_exp for pops in fine.populations for q in [pops[0].quantisation]] == [3, 1]
    np.testing.assert_array_equal(backend.run(fine, {"in": x})["out"], ref)


@needs_lava
def test_check_passes_options_to_the_named_backend(tmp_path, capsys) -> None:
    """``snnx check -O lava:weight_bits=...``: the option reaches lava's lower (exact here: 0 mismatches);
    an option without a backend, or for a backend not checked, is a usage error (exit 2); a refused
    lowering is that backend's error in the table (exit 1)."""
    from snnx.cli import main

    path = tmp_path / "dy.nir"
    nir.write(str(path), dyadic_cnn())
    base = ["check", str(path), "--backends", "lava", "--random", "12", "--batch", "2"]
    assert main([*base, "-O", 'lava:weight_bits={"*": 11, "if2": 9}']) == 0, capsys.readouterr().err
    assert "0 / " in capsys.readouterr().out
    assert main([*base, "-O", "weight_bits=11"]) == 2
    assert "BACKEND:KEY=VALUE" in capsys.readouterr().err
    assert main([*base, "-O", "lava-float:weight_bits=11"]) == 2
    capsys.readouterr()
    assert main([*base, "--json", "-O", "lava:weight_bits=11"]) == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert result["status"] == "error" and "node 'if2': with 11-bit weights" in result["detail"]
