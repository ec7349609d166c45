"""The parameter table of ``snnx_sinabs.fold``, checked against the contract by hand (numpy only)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from snnx_sinabs.fold import FoldError, fold, strict_threshold


def test_strict_threshold_turns_greater_equal_into_greater():
    theta = np.array([1.0, 0.3, -0.5, 0.0], dtype=np.float32)
    t = strict_threshold(theta)
    # Sinabs' SingleSpike fires at v - t >= 0; snnx needs v > theta.
    at = theta
    above = np.nextafter(theta, np.float32(np.inf))
    below = np.nextafter(theta, np.float32(-np.inf))
    assert not np.any((at - t) >= 0)
    assert np.all((above - t) >= 0)
    assert not np.any((below - t) >= 0)


def test_lif_value_reset_is_run_shifted_by_v_reset():
    node = nir.LIF(tau=np.array([2e-3]), r=np.array([3.0]), v_leak=np.array([0.5]),
                   v_threshold=np.array([1.0]), v_reset=np.array([-0.2]))
    f = fold("LIF", node, 1e-4, "value", v_init=np.array([0.1]), i_init=0)
    k = 1e-4 / 2e-3
    assert f.layer == "LIF"
    np.testing.assert_allclose(f.alpha_mem, 1 - k)
    np.testing.assert_allclose(f.gain, k * 3.0)
    np.testing.assert_allclose(f.bias, k * (0.5 + 0.2))  # leak towards v_leak, in v - v_reset coordinates
    np.testing.assert_allclose(f.threshold, 1.2)
    np.testing.assert_allclose(f.v_mem0, 0.3)
    assert f.subtract is None and f.alpha_syn is None


def test_if_subtract_reset_subtracts_the_unshifted_threshold():
    node = nir.IF(r=np.array([2.0]), v_threshold=np.array([0.7]), v_reset=np.array([5.0]))
    f = fold("IF", node, 1e-3, "subtract", v_init=0.0, i_init=0)
    assert f.layer == "IAF" and f.alpha_mem is None
    np.testing.assert_allclose(f.gain, 2e-3)
    np.testing.assert_allclose(f.shift, 0.0)  # v_reset plays no part in a subtract reset
    np.testing.assert_allclose(f.threshold, 0.7)
    np.testing.assert_allclose(f.subtract, 0.7)


def test_cuba_current_is_scaled_into_sinabs_units():
    node = nir.CubaLIF(tau_syn=np.array([5e-4]), tau_mem=np.array([1e-3]), r=np.array([2.0]),
                       v_leak=np.array([0.0]), v_threshold=np.array([1.0]), v_reset=np.array([0.0]),
                       w_in=np.array([1.5]))
    f = fold("CubaLIF", node, 1e-4, "value", v_init=0.0, i_init=np.array([0.4]))
    k_mem, k_syn = 0.1, 0.2
    np.testing.assert_allclose(f.alpha_syn, 1 - k_syn)
    np.testing.assert_allclose(f.gain, k_mem * 2.0 * k_syn * 1.5 / (1 - k_syn))
    np.testing.assert_allclose(f.i_syn0, k_mem * 2.0 * 0.4)
    # One step by hand, both ways, from i = 0.4, v = 0 with input x = 1:
    i_new = 0.4 + k_syn * (-0.4 + 1.5 * 1.0)
    v_new = k_mem * (2.0 * i_new)
    i_syn = f.alpha_syn * (f.i_syn0 + f.gain * 1.0)
    v_mem = f.alpha_mem * 0.0 + i_syn
    np.testing.assert_allclose(v_mem, v_new)


@pytest.mark.parametrize(
    ("changes", "reset", "fragment"),
    [
        ({"v_leak": np.array([0.1])}, "subtract", "v_leak is non-zero"),
        ({"v_leak": np.array([0.0]), "v_reset": np.array([0.3])}, "value", "v_leak - v_reset is non-zero"),
        ({"tau_syn": np.array([1e-4])}, "value", "tau_syn equals dt"),
    ],
)
def test_cuba_refusals_say_why(changes, reset, fragment):
    params = {"tau_syn": np.array([5e-4]), "tau_mem": np.array([1e-3]), "r": np.array([1.0]),
              "v_leak": np.array([0.0]), "v_threshold": np.array([1.0]), "v_reset": np.array([0.0]),
              "w_in": np.array([1.0])}
    params.update(changes)
    with pytest.raises(FoldError, match=fragment):
        fold("CubaLIF", nir.CubaLIF(**params), 1e-4, reset, v_init=0.0, i_init=0.0)


def test_unknown_neuron_kind_is_refused():
    with pytest.raises(FoldError, match="no layer for NIR Threshold"):
        fold("Threshold", nir.Threshold(threshold=np.array([1.0])), 1e-4, "value", 0.0, 0.0)
