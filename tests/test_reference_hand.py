"""The reference simulator against traces computed by hand (see the derivations in the comments).

The smallest conformance cases use dt = 1 and binary-exact numbers, so every value below is exact.
Checking the stored golden traces against these hand values verifies the oracle itself.
"""

import numpy as np
import pytest

import snnx
from snnx.conformance import load_case

HAND = {
    # r=(1,2), vth=1, v_reset=(0,-0.5); n1 reaches exactly 1.0 at t=1: no spike (strict >).
    # n1: 0.5, 1.0, 2.0 -> -0.5, 0.0, 1.0 (no spike), 2.0 -> spike; with v_reset ignored it would fire at t=4.
    "if_value": [[0, 0], [1, 0], [0, 1], [1, 0], [0, 0], [0, 1]],
    # subtract reset keeps the excess: n0 reaches 3.0 at t=2 and fires on three steps in a row.
    "if_subtract": [[0, 0], [1, 1], [1, 0], [1, 1], [0, 1], [1, 0]],
    "threshold_exact": [[0], [0], [1], [0], [0], [0]],
    # v <- v/2 + v_leak/2 + x ; n1: v_leak=0.5, reset to 0.25
    "lif_value": [[0, 0], [1, 0], [0, 1], [1, 1], [0, 0], [1, 1]],
    "lif_subtract": [[1, 1], [1, 0], [0, 1], [1, 1], [1, 0], [1, 0]],
    # i <- i/2 + w_in*x/2 first, then v with the new i
    "cubalif_value": [[0, 1], [1, 0], [0, 1], [1, 1], [1, 1], [0, 0]],
    "cubalif_subtract": [[1, 1]] * 6,
    # delays of 0, 1 and 3 steps
    "delay": [[1, 0, 0], [4, 2, 0], [7, 5, 0], [0, 8, 3], [0, 0, 6]],
    # neuron 1 sees neuron 0's spike one step later through the recurrent edge
    "recurrent": [[1, 0], [0, 1], [0, 0], [1, 0], [0, 1], [0, 0]],
    # Threshold node: exactly-at-threshold inputs do not spike
    "threshold_node_exact": [[0, 0, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]],
    # delays 1.4, 1.6, 2.6, 0.3 steps -> 1, 2, 3, 0 steps; x[t] = 4t + (1, 2, 3, 4)
    "delay_fractional": [[0, 0, 0, 4], [1, 0, 0, 8], [5, 2, 0, 12], [9, 6, 3, 16], [13, 10, 7, 20], [17, 14, 11, 24]],
    # signed IF (derivation in case_if_signed): -1 at v <= 0 (0.0 included) only while the net count is > 0
    "if_signed": [[1, 0], [1, 1], [-1, 1], [-1, -1], [0, -1], [0, 0], [0, 0], [0, 0]],
    # signed LIF (case_lif_signed): n1's leak takes it below 0 at t=1 with no input, so it takes its spike back
    "lif_signed": [[1, 1], [1, -1], [-1, 0], [-1, 0], [0, 0], [0, 0]],
    # LI: n0 v <- v/2 + x/2 ; n1 v <- 3v/4 + 1/4 + x/2
    "li": [[0.5, 0.25], [0.25, 0.9375], [1.125, 0.953125], [0.5625, 0.96484375]],
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_golden_trace_equals_hand_computation(name):
    case = load_case(name)
    expected = np.asarray(HAND[name], dtype=float)[:, None, :]
    assert np.array_equal(case.expected["output"], expected)
    assert np.array_equal(snnx.simulate(case.graph, case.inputs)["output"], expected)


def test_conv_sumpool_by_hand():
    # out[i,j] = x[i,j] + x[i+1,j+1]; IF vth=1 on the 2x2 map; 2x2 sum pool of the spikes.
    # t0: conv [[2,0],[0,1]] -> spike at (0,0) only (1 is not > 1), leaving v[1,1] = 1
    # t1: conv [[.5,0],[0,1.5]] -> v[1,1] = 2.5 spikes; t2: conv [[0,2],[0,0]] -> spike at (0,1)
    case = load_case("conv_sumpool")
    trace = snnx.simulate(case.graph, case.inputs, record=True)
    assert np.array_equal(trace["conv"][0, 0, 0], [[2.0, 0.0], [0.0, 1.0]])
    assert np.array_equal(trace["if"][:, 0, 0], [[[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]])
    assert np.array_equal(case.expected["output"].reshape(-1), [1.0, 1.0, 1.0])


def test_layerwise_and_stepwise_orders_agree():
    # The same feed-forward graph run both ways must give identical traces.
    from snnx.ir import reference
    from snnx.ir.prepare import prepare

    case = load_case("conv_lif_sumpool_affine")
    prepared = prepare(case.graph, dt=1e-3)
    x = case.inputs
    a = reference._run_layerwise(prepared, x)
    b = reference._run_stepwise(prepared, x)
    for k in a:
        assert np.allclose(a[k], b[k], rtol=0, atol=1e-12), k
