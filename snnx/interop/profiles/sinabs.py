"""Sinabs (verified with sinabs 3.1.3, installed with ``--no-deps`` because it pins nir<=1.0.4).

What ``sinabs.nir.to_nir`` writes and what Sinabs' forward does:

- Time is counted in steps (dt = 1): IAF ``v += x`` is written as IF ``r = 1``; LIF/ExpLeak write
  ``tau = tau_mem`` in steps, ``r = 1``, ``v_leak = 0``.
- The decay is exact, not Euler: ``alpha = exp(-1/tau_mem)`` (float32), ``v = alpha*v + (1-alpha)*x``
  for LIF (``norm_input=True``, its default) and ``v = alpha*v + x`` for ExpLeak (``norm_input=False``).
  The contract's Euler step with ``tau' = dt/(1-alpha)`` and ``r' = gain*tau'/dt`` is the same map.
- Reset is ``MembraneSubtract`` (the contract's ``subtract``), spikes on ``v >= threshold``.
- Not in the file: ``spike_fn``. Sinabs' default ``MultiSpike`` emits ``floor(v/threshold)`` spikes in
  one step; the contract's neurons emit at most one. We assume ``SingleSpike``; a MultiSpike model
  agrees only while no neuron reaches twice its threshold in one step. ``min_v_mem`` (default None)
  is assumed unset.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snnx.interop.base import (
    Converted,
    Detection,
    InteropError,
    Profile,
    all_close,
    f64,
    flat_neurons,
    neurons,
    param_layout,
    start_import,
)
from snnx.ir.passes import flatten
from snnx.ir.semantics import set_graph_contract, set_node_contract


def _alpha(tau: Any) -> np.ndarray:
    """Sinabs' ``exp(-1/tau_mem)`` computed in float32, as the layer does."""
    return f64(np.exp(np.float32(-1.0) / np.asarray(tau, dtype=np.float32)))


class SinabsProfile(Profile):
    """Import files written by ``sinabs.nir.to_nir``; ``sinabs.nir.from_nir`` cannot take the contract."""

    name = "sinabs"
    verified = {"sinabs": "3.1.3", "nir": "1.0.8"}

    def detect(self, graph: nir.NIRGraph) -> Detection:
        flat, ns = flat_neurons(graph)
        if not ns:
            return Detection(self.name, 0.0, "no neurons")
        for name, n in ns:
            if not isinstance(n, (nir.IF, nir.LIF, nir.LI)):
                return Detection(self.name, 0.0, f"{name}: {type(n).__name__} (to_nir writes IF, LIF, LI)")
            if not all_close(n.r, 1):
                return Detection(self.name, 0.0, f"{name}: r != 1 (to_nir writes r = 1)")
        taus = [f64(n.tau) for _, n in ns if isinstance(n, (nir.LIF, nir.LI))]
        if taus and all(np.all(t >= 1) for t in taus):
            return Detection(self.name, 0.8, "r = 1 and every tau >= 1: time constants in steps (dt = 1)")
        if not taus:
            if param_layout(ns) == "full":
                return Detection(self.name, 0.6, "only IF neurons with r = 1 and per-neuron thresholds (Sinabs' IAF)")
            return Detection(self.name, 0.3, "only IF neurons with r = 1 (Sinabs' IAF, or Norse's IAFCell)")
        return Detection(self.name, 0.1, "r = 1, but time constants below one step")

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        dt = 1.0
        out = start_import(graph)
        g = out.graph
        spike_fn = str(assume.get("spike_fn", "SingleSpike"))
        if spike_fn != "SingleSpike":
            raise InteropError(f"spike_fn {spike_fn!r}: the contract's neurons emit at most one spike per step")
        norm_input = bool(assume.get("norm_input", True))
        out.assumed.append("time in steps: dt = 1 (to_nir writes tau_mem in steps and IAF as IF r = 1)")
        out.assumed.append("spike_fn = SingleSpike (Sinabs' default MultiSpike agrees only below 2x threshold)")
        out.assumed.append("reset_fn = MembraneSubtract, min_v_mem = None (Sinabs' defaults)")
        if any(isinstance(n, nir.LIF) for _, n in neurons(g)):
            out.assumed.append(f"LIF norm_input = {norm_input} (Sinabs' default True; -A norm_input=false)")
        for name, n in neurons(g):
            if isinstance(n, (nir.LIF, nir.LI)):
                if not all_close(n.v_leak, 0) and np.any(f64(n.v_leak) != 0):
                    raise InteropError("v_leak != 0 is not written by Sinabs' to_nir", node=name)
                alpha = _alpha(n.tau)
                tau = dt / (1 - alpha)
                gain = (1 - alpha) if (isinstance(n, nir.LIF) and norm_input) else np.ones_like(alpha)
                r = gain * tau / dt * f64(n.r)
                if isinstance(n, nir.LIF):
                    g.nodes[name] = nir.LIF(tau=tau, r=r, v_leak=np.zeros_like(tau),
                                            v_threshold=np.nextafter(f64(n.v_threshold), -np.inf),
                                            v_reset=np.zeros_like(tau))
                else:
                    g.nodes[name] = nir.LI(tau=tau, r=r, v_leak=np.zeros_like(tau))
            elif isinstance(n, nir.IF):
                g.nodes[name] = nir.IF(r=f64(n.r) / dt, v_threshold=np.nextafter(f64(n.v_threshold), -np.inf),
                                       v_reset=np.zeros_like(f64(n.v_threshold)))
            else:
                raise InteropError(f"{type(n).__name__} is not written by Sinabs' to_nir", node=name)
            if not isinstance(n, nir.LI):
                set_node_contract(g.nodes[name], reset="subtract")
        out.notes.append("exact exponential decay written as the equivalent Euler step (tau' = 1/(1-exp(-1/tau)))")
        out.notes.append("thresholds lowered by one float64 ulp: Sinabs fires on v >= threshold")
        set_graph_contract(g, dt=dt)
        return out

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Refuse spiking neurons: ``from_nir`` builds them with ``MultiSpike`` and subtract resets.

        Verified with 3.1.3: with its default arguments it cannot build a spiking layer at all
        (``TypeError: You need to specify either batch_size or num_timesteps``); it maps no
        ``nir.Linear`` (KeyError in nirtorch).

        Sinabs' importer gives every IF/LIF ``spike_fn=MultiSpike`` (``floor(v/threshold)`` spikes in
        one step) with no argument to change it, and IF also ``min_v_mem = -threshold``; the contract's
        neurons emit at most one spike and have no floor, so no rewrite makes them agree in general.
        """
        from snnx.ir.semantics import reset_of

        for name, node in sorted(flatten(graph).nodes.items()):
            if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)) and reset_of(node) == "value":
                raise InteropError("reset to a value: sinabs.nir.from_nir always resets by subtracting the "
                                   "threshold (MembraneSubtract)", node=name)
            if isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)):
                raise InteropError(
                    "sinabs.nir.from_nir builds every spiking layer with MultiSpike (several spikes per step "
                    "at 2x threshold), no way to choose SingleSpike, and with default arguments cannot build "
                    "it at all (batch_size or num_timesteps required)", node=name)
        raise InteropError("the graph has no spiking neuron; only spiking graphs are exported for Sinabs")


PROFILE = SinabsProfile()
