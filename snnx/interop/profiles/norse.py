"""Norse (verified with norse 1.1.0): ``norse.torch.to_nir`` and ``norse.torch.from_nir``.

What ``to_nir`` writes (dt defaults to 1e-3, the default of Norse's cells too):

- ``tau = dt / tau_mem_inv``: the time constant is written *inverted* (``dt*tau`` instead of ``tau``),
  so the true one is ``tau_written / dt``. Same for ``tau_syn``.
- ``r = 1``, no ``v_reset`` (NIR's default 0, Norse's default too), no ``w_in``.
- LIFBoxCell: ``v += dt*tau_mem_inv*(v_leak - v + x)``, spike ``v - v_th > 0``, reset to v_reset: the
  contract's LIF exactly.
- LIFCell (CubaLIF): ``i += x`` first (no ``dt/tau_syn`` factor), then v with that i, then i decays:
  the contract's CubaLIF with ``w_in = tau_syn/dt``.
- IAFCell: ``v += x`` (no dt): the contract's IF with ``r = 1/dt``.
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
    fold_gain,
    negative_flatten_dims,
    neurons,
    param_layout,
    start_import,
    swap_pool,
)
from snnx.ir.semantics import set_graph_contract, set_node_contract

DT = 1e-3  # norse.torch.to_nir's and Norse's cells' default


class NorseProfile(Profile):
    """Import files written by ``norse.torch.to_nir``; export for ``norse.torch.from_nir``."""

    name = "norse"
    verified = {"norse": "1.1.0", "nir": "1.0.8", "nirtorch": "2.6"}

    def detect(self, graph: nir.NIRGraph) -> Detection:
        flat, ns = flat_neurons(graph)
        if not ns:
            return Detection(self.name, 0.0, "no neurons")
        for name, n in ns:
            if not all_close(n.r, 1):
                return Detection(self.name, 0.0, f"{name} has r != 1 (to_nir always writes r = 1)")
            if isinstance(n, nir.CubaLIF) and not all_close(n.w_in, 1):
                return Detection(self.name, 0.0, f"{name} has w_in != 1")
        score, why = 0.3, ["r = 1 everywhere (to_nir always writes r = 1)"]
        if any(k.isdigit() for k in flat.nodes) and not any(k.startswith("_") for k in flat.nodes):
            score += 0.3
            why.append("nirtorch's extract_nir_graph names (0, 1, ...)")
        layout = param_layout(ns)
        if layout == "scalar":
            score += 0.2
            why.append("0-d neuron parameters (the cells' defaults)")
        elif layout == "full":
            score -= 0.2
            why.append("but parameters stored per neuron (Norse's defaults are 0-d)")
        taus = [f64(getattr(n, "tau", getattr(n, "tau_mem", np.nan))) for _, n in ns if not isinstance(n, nir.IF)]
        if taus and all(np.all(t < 1e-2) for t in taus):
            score += 0.2
            why.append("every tau < 1e-2 s (to_nir writes dt*tau, not tau)")
        return Detection(self.name, round(min(score, 0.95), 2), "; ".join(why))

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        dt = float(assume.get("dt", DT))
        out = start_import(graph)
        g = out.graph
        out.assumed.append(f"dt = {dt:g} (to_nir's and the cells' default; the file does not store it)")
        out.assumed.append("tau written as dt*tau (to_nir inverts tau_mem_inv the wrong way): tau = written/dt")
        for name, n in neurons(g):
            vth = getattr(n, "v_threshold", None)
            vreset = getattr(n, "v_reset", None)
            if isinstance(n, nir.LIF):
                g.nodes[name] = nir.LIF(tau=f64(n.tau) / dt, r=f64(n.r), v_leak=f64(n.v_leak),
                                        v_threshold=f64(vth), v_reset=f64(vreset))
            elif isinstance(n, nir.CubaLIF):
                tau_syn = f64(n.tau_syn) / dt
                g.nodes[name] = nir.CubaLIF(tau_mem=f64(n.tau_mem) / dt, tau_syn=tau_syn, r=f64(n.r),
                                            w_in=f64(n.w_in) * tau_syn / dt, v_leak=f64(n.v_leak),
                                            v_threshold=f64(vth), v_reset=f64(vreset))
            elif isinstance(n, nir.LI):
                g.nodes[name] = nir.LI(tau=f64(n.tau) / dt, r=f64(n.r), v_leak=f64(n.v_leak))
            elif isinstance(n, nir.IF):
                g.nodes[name] = nir.IF(r=f64(n.r) / dt, v_threshold=f64(vth), v_reset=f64(vreset))
            else:
                raise InteropError(f"{type(n).__name__} is not written by Norse's to_nir", node=name)
            if isinstance(g.nodes[name], (nir.LIF, nir.CubaLIF, nir.IF)):
                set_node_contract(g.nodes[name], reset="value")
        set_graph_contract(g, dt=dt)
        return out

    # -- export ---------------------------------------------------------------------------------------
    EXPORTABLE = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.SumPool2d,
                  nir.AvgPool2d, nir.LIF, nir.CubaLIF, nir.IF)

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Rewrite for ``norse.torch.from_nir`` (default arguments, verified with Norse 1.1.0).

        Its conventions: dt = 1e-3, ``tau_mem_inv = 1/tau`` (read correctly), LIF ``r`` and every
        ``v_reset`` ignored (reset to 0), IF integrates ``v += x``, CubaLIF's synapse leaks towards the
        node's ``v_leak``, SumPool2d as LPPool2d without padding, no AvgPool2d, NIR Flatten dims passed
        to ``torch.nn.Flatten`` as if they counted the batch.
        """
        g, dt = export_checks(graph, "Norse", self.EXPORTABLE, cycles=True)
        out = Converted(graph=g)
        for name, node in sorted(g.nodes.items()):
            if isinstance(node, nir.AvgPool2d):
                swap_pool(g, name, nir.SumPool2d)
                out.notes.append(f"{name}: AvgPool2d written as SumPool2d, 1/kernel area folded into the next layer")
                node = g.nodes[name]
            if isinstance(node, nir.SumPool2d) and np.any(np.asarray(node.padding) != 0):
                raise InteropError("padded SumPool2d: from_nir builds LPPool2d, which has no padding", node=name)
            if isinstance(node, nir.Flatten):
                negative_flatten_dims(g, name, out)
        for name, n in neurons(g, (nir.LIF, nir.CubaLIF, nir.IF)):
            v_reset = f64(n.v_reset)
            # from_nir ignores v_reset (Norse's default 0): shift v by v_reset, exact for these linear ODEs.
            thr = f64(n.v_threshold) - v_reset
            if isinstance(n, nir.LIF):
                fold_gain(g, name, f64(n.r), "from_nir ignores LIF r")
                out.notes.append(f"{name}: r folded into the incoming weights (from_nir ignores it)")
                g.nodes[name] = nir.LIF(tau=f64(n.tau) * DT / dt, r=np.ones_like(f64(n.r)),
                                        v_leak=f64(n.v_leak) - v_reset, v_threshold=thr, v_reset=0 * thr)
            elif isinstance(n, nir.IF):
                fold_gain(g, name, dt * f64(n.r), "Norse's IAFCell integrates v += x")
                out.notes.append(f"{name}: dt*r folded into the incoming weights (IAFCell integrates v += x)")
                g.nodes[name] = nir.IF(r=np.ones_like(thr), v_threshold=thr, v_reset=0 * thr)
            else:
                if not np.all(f64(n.v_leak) == v_reset):
                    raise InteropError("v_leak != v_reset: from_nir's CubaLIF synapse also leaks towards v_leak",
                                       node=name)
                g.nodes[name] = nir.CubaLIF(tau_mem=f64(n.tau_mem) * DT / dt, tau_syn=f64(n.tau_syn) * DT / dt,
                                            r=f64(n.r), w_in=f64(n.w_in), v_leak=0 * thr, v_threshold=thr,
                                            v_reset=0 * thr)
            if np.any(v_reset != 0):
                out.notes.append(f"{name}: v shifted by v_reset (from_nir resets to 0)")
        if dt != DT:
            out.notes.append(f"time constants rescaled from dt = {dt:g} to from_nir's dt = {DT:g}")
        return Converted(graph=exported(g, self.name), notes=out.notes)


PROFILE = NorseProfile()
