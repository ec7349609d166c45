"""The numpy side of the Norse folds (``specs/backends/norse.md``): numpy only, no torch.

Norse's cells take every parameter per neuron and an explicit state, so nothing in a valid graph is
refused beyond the capability check; what is left here is the choice of ``tau_inv`` and the spike
functions whose forward pass is the contract's strict step.
"""

from __future__ import annotations

import numpy as np

from snnx.torch.params import f64

#: Norse spike functions whose forward pass is the strict step ``v - v_th > 0`` (the others sample).
DETERMINISTIC_METHODS = frozenset({"super", "heaviside", "triangle", "tanh", "circ", "heavi_erfc"})
#: Norse's default surrogate (SuperSpike) and its sharpness; ``lower(..., method=, alpha=)`` overrides.
DEFAULT_METHOD = "super"
DEFAULT_ALPHA = 100.0


def rate(dt: float, tau: np.ndarray) -> np.ndarray:
    """``tau_mem_inv`` / ``tau_syn_inv`` for Norse, in float64.

    Norse multiplies ``dt * tau_inv``; the contract uses ``dt/τ``. Of the float64 neighbours of ``1/τ``
    this picks one whose product with ``dt`` is exactly the float64 ``dt/τ`` when there is one, so a
    float64 model uses the contract's own per-step factor.
    """
    tau = f64(tau)
    want = dt / tau
    best = 1.0 / tau
    found = (dt * best) == want
    for direction in (np.inf, -np.inf):
        cand = best.copy()
        for _ in range(4):
            cand = np.nextafter(cand, direction)
            hit = ((dt * cand) == want) & ~found
            best = np.where(hit, cand, best)
            found = found | hit
    return np.asarray(best, dtype=np.float64)


def inverse(x: np.ndarray) -> np.ndarray:
    """``1/x``: a ``tau`` back from Norse's ``tau_*_inv`` (the ``unfold`` of ``ContractNeuron.recover``)."""
    return 1.0 / x
