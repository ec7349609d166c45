"""Rockpool (verified with rockpool 3.1.0, ``rockpool.nn.modules.torch.nir``).

What ``to_nir`` writes and what Rockpool's torch modules do:

- ``r = tau*exp(-dt/tau)/dt`` for every neuron (the exporter's way to carry dt); ``w_in`` is not
  written (NIR's default 1). dt is recovered from ``r`` and ``tau`` (default dt is 1e-3).
- LIFTorch: ``isyn = beta*(isyn + x)``, ``v = alpha*v + isyn + bias``, with exact decays
  ``alpha = exp(-dt/tau_mem)``, ``beta = exp(-dt/tau_syn)`` (float32); spikes on ``v >= threshold``;
  reset by subtracting the threshold. As the contract's CubaLIF: ``tau' = dt/(1-decay)``,
  ``w_in = beta/(1-beta)``, ``r = 1/(1-alpha)``, reset ``subtract``.
- LIFNeuronTorch: ``v = alpha*v + x + bias``, same spikes: the contract's LIF. ExpSynTorch:
  ``isyn = beta*(isyn + x)``: the contract's LI with ``r = beta/(1-beta)``.
- The Input type carries the batch dimension and the Output type batch and time: dropped.
- Known exporter losses, not recoverable from the file: the neurons' ``bias`` (written as v_leak = 0),
  a LIFTorch's recurrent weights ``w_rec`` (has_rec=True exports as a feed-forward CubaLIF).
- Not in the file: Rockpool's spike generation emits ``floor(v/threshold)`` spikes per step (up to
  ``max_spikes_per_dt``); the contract's neurons emit at most one. Assumed: never 2x threshold.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snnx.interop.base import Converted, Detection, InteropError, Profile, f64, flat_neurons, neurons, start_import
from snnx.ir.passes import flatten
from snnx.ir.semantics import set_graph_contract, set_node_contract

DT = 1e-3  # Rockpool's default dt


def _solve_dt(tau: np.ndarray, r: np.ndarray) -> np.ndarray:
    """dt from ``r = tau*exp(-dt/tau)/dt`` per neuron (the right side falls monotonically in dt)."""
    lo, hi = np.full(tau.shape, 1e-12), np.full(tau.shape, 1e3)
    for _ in range(200):  # bisection in log space: robust, and 200 halvings reach float64 precision
        mid = np.sqrt(lo * hi)
        too_big = tau * np.exp(-mid / tau) / mid < r
        hi, lo = np.where(too_big, mid, hi), np.where(too_big, lo, mid)
    return np.sqrt(lo * hi)


def _decay(dt: float, tau: Any) -> np.ndarray:
    """``exp(-dt/tau)`` in float32, as Rockpool's ``tau_to_decay`` computes it."""
    return f64(np.exp(np.float32(-dt) / np.asarray(tau, dtype=np.float32)))


class RockpoolProfile(Profile):
    """Import files written by Rockpool's ``to_nir``."""

    name = "rockpool"
    verified = {"rockpool": "3.1.0", "nir": "1.0.8"}

    @staticmethod
    def _tau_r(n: nir.NIRNode) -> tuple[np.ndarray, np.ndarray]:
        tau = f64(n.tau_mem) if isinstance(n, nir.CubaLIF) else f64(n.tau)
        return np.broadcast_arrays(tau, f64(n.r))

    def _file_dt(self, g: nir.NIRGraph) -> float | None:
        dts = []
        for _, n in neurons(g, (nir.CubaLIF, nir.LIF, nir.LI)):
            tau, r = self._tau_r(n)
            if np.any(r <= 0) or np.any(tau <= 0):
                return None
            dts.append(_solve_dt(tau, r).ravel())
        if not dts:
            return None
        allv = np.concatenate(dts)
        if not np.allclose(allv, allv[0], rtol=1e-4):
            return None
        return float(f"{allv[0]:.5g}")  # float32 parameters: the exporter's dt to 5 significant digits

    def detect(self, graph: nir.NIRGraph) -> Detection:
        flat, ns = flat_neurons(graph)
        if not ns:
            return Detection(self.name, 0.0, "no neurons")
        if any(not isinstance(n, (nir.CubaLIF, nir.LIF, nir.LI)) for _, n in ns):
            return Detection(self.name, 0.0, "neuron kinds to_nir does not write")
        dt = self._file_dt(flat)
        if dt is None:
            return Detection(self.name, 0.0, "r is not tau*exp(-dt/tau)/dt for one dt")
        if any(isinstance(n, nir.CubaLIF) and not np.allclose(f64(n.w_in), 1) for _, n in ns):
            return Detection(self.name, 0.0, "a CubaLIF has w_in != 1 (to_nir does not write w_in)")
        taus = {float(v) for _, n in ns for v in np.ravel(self._tau_r(n)[0])}
        round_dt = np.isclose(float(f"{dt:.2g}"), dt, rtol=1e-4)
        # One (tau, r) pair always solves for some dt: only a round dt, or several taus agreeing, say Rockpool.
        score = 0.75 if (round_dt or len(taus) > 1) else 0.2
        why = [f"every neuron has r = tau*exp(-dt/tau)/dt with dt = {dt:g}"]
        if any("_" in k and k.split("_", 1)[0].isdigit() for k in flat.nodes):
            score, why = score + 0.15, why + ["Rockpool's '<index>_<Module>' node names"]
        return Detection(self.name, score, "; ".join(why))

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        out = start_import(graph)
        g = out.graph
        found = self._file_dt(g)
        if "dt" in assume:
            dt = float(assume["dt"])
        elif found is not None:
            dt = found
            out.notes.append(f"dt = {dt:g}, solved from r = tau*exp(-dt/tau)/dt")
        else:
            raise InteropError("the neurons' r = tau*exp(-dt/tau)/dt do not agree on one dt; give -A dt=...")
        out.assumed.append("bias = 0 (to_nir drops the neurons' bias) and no recurrent w_rec (to_nir drops it)")
        out.assumed.append("at most one spike per step (Rockpool emits floor(v/threshold); equal below 2x threshold)")
        for name, n in neurons(g):
            thr = getattr(n, "v_threshold", None)
            if isinstance(n, nir.CubaLIF):
                alpha, beta = _decay(dt, n.tau_mem), _decay(dt, n.tau_syn)
                g.nodes[name] = nir.CubaLIF(
                    tau_mem=dt / (1 - alpha), tau_syn=dt / (1 - beta), r=1 / (1 - alpha), w_in=beta / (1 - beta),
                    v_leak=np.zeros_like(alpha), v_threshold=np.nextafter(f64(thr), -np.inf),
                    v_reset=np.zeros_like(alpha))
            elif isinstance(n, nir.LIF):
                alpha = _decay(dt, n.tau)
                g.nodes[name] = nir.LIF(tau=dt / (1 - alpha), r=1 / (1 - alpha), v_leak=np.zeros_like(alpha),
                                        v_threshold=np.nextafter(f64(thr), -np.inf), v_reset=np.zeros_like(alpha))
            elif isinstance(n, nir.LI):
                beta = _decay(dt, n.tau)
                g.nodes[name] = nir.LI(tau=dt / (1 - beta), r=beta / (1 - beta), v_leak=np.zeros_like(beta))
            else:
                raise InteropError(f"{type(n).__name__} is not written by Rockpool's to_nir", node=name)
            if not isinstance(n, nir.LI):
                set_node_contract(g.nodes[name], reset="subtract")
        out.notes.append("exact exponential decays written as the equivalent Euler steps; thresholds one ulp "
                         "lower (Rockpool fires on v >= threshold)")
        set_graph_contract(g, dt=dt)
        return out

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Refuse: ``rockpool.nn.modules.torch.nir.from_nir`` cannot build the contract's neurons.

        Verified with 3.1.0: its LIF branch reads ``node.tau_mem`` from a ``nir.LIF`` (which has
        ``tau``) and raises AttributeError; CubaLIF becomes a LIFTorch that resets by subtraction and
        emits ``floor(v/threshold)`` spikes per step (``max_spikes_per_dt = 2**16``) with no argument
        to change either; IF and Conv/Flatten/pool nodes have no mapping.
        """
        from snnx.ir.semantics import reset_of

        for name, node in sorted(flatten(graph).nodes.items()):
            if isinstance(node, nir.LIF):
                raise InteropError("Rockpool's from_nir reads tau_mem from a nir.LIF, which has tau "
                                   "(AttributeError in rockpool 3.1.0)", node=name)
            if isinstance(node, nir.CubaLIF) and reset_of(node) == "value":
                raise InteropError("reset to a value: Rockpool's LIFTorch always resets by subtracting the "
                                   "threshold", node=name)
            if isinstance(node, nir.CubaLIF):
                raise InteropError("Rockpool's LIFTorch emits floor(v/threshold) spikes per step "
                                   "(max_spikes_per_dt = 2**16) and from_nir cannot make it emit one", node=name)
            if not isinstance(node, (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.LI)):
                raise InteropError(f"Rockpool's from_nir has no mapping for {type(node).__name__}", node=name)
        raise InteropError("only graphs of Affine/Linear and LI nodes reach Rockpool's importer, and its LI is "
                           "an ExpSynTorch with tau rounded to an integer (tau.int())")


PROFILE = RockpoolProfile()
