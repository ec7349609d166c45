"""SpikingJelly (verified with spikingjelly 2.0.0): ``nir_exchange.export_to_nir`` / ``import_from_nir``.

What ``export_to_nir`` writes (dt defaults to 1e-4):

- LIFNode: ``tau = tau_sj*dt``, ``r = 1`` (decay_input) or ``tau_sj``, ``v_leak = v_reset``; IFNode:
  ``r = 1/dt``; CUBALIFNode: ``tau = dt/(1-decay)``, ``r = tau_mem/dt``, ``w_in = tau_syn/dt``. These
  are the contract's Euler steps already; soft reset is refused by the exporter itself.
- SpikingJelly fires on ``v >= v_threshold`` (its heaviside is ``x >= 0``); the contract is strict
  ``>``. The threshold becomes the next float64 below it, so a membrane exactly at threshold fires
  as in SpikingJelly.
- Node names come from nirtorch's fx tracer (``input_1``, ``_0``, ``_1``, ...), parameters are stored
  at the full neuron shape.
"""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snnx.interop.base import Converted, Detection, Profile, all_close, copy_graph, drop_batch_dims, f64, neurons
from snnx.ir.passes import flatten
from snnx.ir.semantics import set_graph_contract, set_node_contract

DT = 1e-4  # export_to_nir's default


def _file_dt(g: nir.NIRGraph) -> float | None:
    """The exporter's dt where the parameters reveal it: IF ``r = 1/dt``, CubaLIF ``r = tau_mem/dt``."""
    for _, n in neurons(g, (nir.IF, nir.CubaLIF)):
        ratio = 1 / f64(n.r) if isinstance(n, nir.IF) else f64(n.tau_mem) / f64(n.r)
        if ratio.size and np.allclose(ratio, ratio.flat[0], rtol=1e-6):
            return float(ratio.flat[0])
    return None


class SpikingJellyProfile(Profile):
    """Import files written by SpikingJelly's ``export_to_nir``; export for its ``import_from_nir``."""

    name = "spikingjelly"
    verified = {"spikingjelly": "2.0.0", "nir": "1.0.8"}

    def detect(self, graph: nir.NIRGraph) -> Detection:
        flat = flatten(graph)
        ns = neurons(flat)
        if not ns:
            return Detection(self.name, 0.0, "no neurons")
        reasons, score = [], 0.3
        for name, n in ns:
            if isinstance(n, nir.LIF) and not all_close(n.v_leak, getattr(n, "v_reset", 0)):
                return Detection(self.name, 0.0, f"{name}: v_leak != v_reset")
            if isinstance(n, nir.IF) and not all_close(n.r, 1 / DT):
                return Detection(self.name, 0.0, f"{name}: IF with r != 1/1e-4")
            if np.ndim(f64(getattr(n, "v_threshold", 0))) == 0:
                return Detection(self.name, 0.0, f"{name}: scalar parameters (export_to_nir writes full shapes)")
        if any(k.startswith("_") and k[1:].isdigit() for k in flat.nodes) or "input_1" in flat.nodes:
            score += 0.5
            reasons.append("nirtorch fx-tracer node names (_0, _1, input_1)")
        if any(isinstance(n, nir.IF) for _, n in ns):
            score += 0.1
            reasons.append("IF with r = 1/1e-4")
        reasons.append("full-shape parameters, v_leak = v_reset")
        return Detection(self.name, min(score, 0.95), "; ".join(reasons))

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        out = Converted(graph=flatten(copy_graph(graph)))
        g = out.graph
        drop_batch_dims(g, out)
        found = _file_dt(g)
        dt = float(assume.get("dt", found if found is not None else DT))
        if "dt" in assume:
            out.assumed.append(f"dt = {dt:g} (given)")
        elif found is not None:
            out.notes.append(f"dt = {dt:g} (revealed by IF r = 1/dt or CubaLIF r = tau_mem/dt)")
        else:
            out.assumed.append(f"dt = {dt:g} (export_to_nir's default; LIF tau = tau_sj*dt hides it)")
        for _, n in neurons(g, (nir.LIF, nir.IF, nir.CubaLIF)):
            # v >= thr (SpikingJelly) is v > nextafter(thr, -inf) for every float64 v.
            n.v_threshold = np.nextafter(f64(n.v_threshold), -np.inf)
            set_node_contract(n, reset="value")
        out.notes.append("thresholds lowered by one float64 ulp: SpikingJelly fires on v >= v_threshold")
        set_graph_contract(g, dt=dt)
        return out


PROFILE = SpikingJellyProfile()
