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

from snnx.interop.base import (
    Converted,
    Detection,
    InteropError,
    Profile,
    all_close,
    export_checks,
    exported,
    f64,
    flat_neurons,
    input_transform,
    neurons,
    start_import,
    swap_pool,
    uniform,
)
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
        flat, ns = flat_neurons(graph)
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
        out = start_import(graph)
        g = out.graph
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

    # -- export ---------------------------------------------------------------------------------------
    EXPORTABLE = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d, nir.Flatten,
                  nir.AvgPool2d, nir.SumPool2d, nir.LIF, nir.CubaLIF, nir.IF)

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Rewrite for SpikingJelly's ``import_from_nir`` (default arguments, verified with 2.0.0).

        Its conventions: dt = 1e-4; one scalar per neuron parameter per layer; LIF ``r`` must be 1 or
        ``tau/dt`` and ``v_leak = v_reset``; IF ``r = 1/dt``; CubaLIF ``r = tau_mem/dt``,
        ``w_in = tau_syn/dt``, ``v_leak = 0``; spikes on ``v >= v_threshold``; no grouped convolution,
        no SumPool2d.
        """
        g, dt = export_checks(graph, "SpikingJelly", self.EXPORTABLE, cycles=True)
        out = Converted(graph=g)
        for name, node in sorted(g.nodes.items()):
            if isinstance(node, nir.SumPool2d):
                swap_pool(g, name, nir.AvgPool2d)
                out.notes.append(f"{name}: SumPool2d written as AvgPool2d, kernel area folded into the next layer")
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and int(np.asarray(node.groups)) != 1:
                raise InteropError("grouped convolution: import_from_nir refuses groups != 1", node=name)
        for name, n in neurons(g, (nir.LIF, nir.CubaLIF, nir.IF)):
            g.nodes[name] = self._export_neuron(g, name, n, dt, out)
        return Converted(graph=exported(g, self.name), notes=out.notes)

    @staticmethod
    def _export_neuron(g: nir.NIRGraph, name: str, n: nir.NIRNode, dt: float, out: Converted) -> nir.NIRNode:
        def one(value: np.ndarray, what: str) -> float:
            if not uniform(value):
                raise InteropError(f"{what} differs across the layer; SpikingJelly's neuron takes one value", node=name)
            return float(np.ravel(value)[0])

        v_reset, v_leak = f64(n.v_reset), f64(getattr(n, "v_leak", n.v_reset))
        offset = np.zeros(())
        if isinstance(n, nir.CubaLIF):
            # CUBALIFNode has no leak potential (import_from_nir wants v_leak = 0): shift v by v_leak.
            shift = v_leak
            gain = (dt / f64(n.tau_syn)) * f64(n.w_in) * (dt / f64(n.tau_mem)) * f64(n.r)
        else:
            # LIFNode leaks towards v_reset: shift v by v_reset; a leak towards v_leak != v_reset is then
            # the constant input (dt/tau)*(v_leak - v_reset) per step.
            shift = v_reset
            if isinstance(n, nir.LIF):
                tau_sj = one(f64(n.tau) / dt, "tau")
                gain = (dt / f64(n.tau)) * f64(n.r)  # decay_input=False: v += (v_reset - v)/tau_sj + x
                offset = (dt / f64(n.tau)) * (v_leak - v_reset)
            else:
                gain = dt * f64(n.r)
        thr, vr = f64(n.v_threshold) - shift, v_reset - shift
        shape = np.broadcast_shapes(np.shape(thr), np.shape(gain), np.shape(offset), np.shape(vr))
        if uniform(np.broadcast_to(thr / gain, shape)) and uniform(np.broadcast_to(vr / gain, shape)) and not np.any(offset):
            k = gain  # SpikingJelly's v is (ours - shift)/gain
        else:
            if np.any(thr <= 0):
                raise InteropError("v_threshold at or below the reset/leak value and thresholds differ across "
                                   "the layer: no per-layer threshold expresses it", node=name)
            input_transform(g, name, gain / thr, offset / thr, "SpikingJelly takes one threshold per layer")
            out.notes.append(f"{name}: input gain, leak and threshold folded into the incoming weights (threshold 1)")
            k = thr
        full = lambda v: np.full(shape or (1,), v)  # noqa: E731 - SpikingJelly's exporter writes full shapes
        # SpikingJelly fires on v >= thr in float32: the strict contract threshold is the next float32 up.
        vthr = float(np.nextafter(np.float32(one(np.broadcast_to(thr / k, shape), "v_threshold")), np.float32(np.inf)))
        vr = one(np.broadcast_to(vr / k, shape), "v_reset")
        if isinstance(n, nir.LIF):
            return nir.LIF(tau=full(tau_sj * DT), r=full(tau_sj), v_leak=full(vr), v_threshold=full(vthr),
                           v_reset=full(vr))
        if isinstance(n, nir.IF):
            return nir.IF(r=full(1 / DT), v_threshold=full(vthr), v_reset=full(vr))
        tau_syn = one(f64(n.tau_syn) / dt, "tau_syn") * DT
        tau_mem = one(f64(n.tau_mem) / dt, "tau_mem") * DT
        return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / DT),
                           w_in=full(tau_syn / DT), v_leak=full(0.0), v_threshold=full(vthr), v_reset=full(vr))


PROFILE = SpikingJellyProfile()
