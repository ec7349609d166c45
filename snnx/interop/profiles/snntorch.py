"""snnTorch (verified with snntorch 1.0.0): ``export_to_nir`` and ``import_from_nir``.

What ``export_to_nir`` writes and what snnTorch's forward does (``specs/interop.md`` has the table):

- dt is hard-coded to 1e-4: ``tau = dt/(1-beta)``, ``r = tau/dt`` (so ``dt/tau*r = 1``), v_leak = 0;
  Synaptic also ``tau_syn = dt/(1-alpha)``, ``w_in = tau_syn/dt``. Parameters are float32.
- The reset mechanism is not written (``v_reset = 0`` always). snnTorch's default is ``subtract`` and
  it is *delayed* (``reset_delay=True``): ``mem[t] = beta*mem[t-1] + x[t] - thr*s[t-1]``, i.e. the
  threshold is subtracted after the decay, not before it as in the contract's subtract reset. We keep
  the contract's ``subtract`` and feed ``-(1-beta)*thr*s[t-1]`` back into the neuron (a Scale on a
  self-loop), which makes the two equal exactly. A zero reset (``--assume reset=zero``) is the
  contract's ``value`` reset to 0 exactly (snnTorch zeroes the stored mem before decaying it).
- RLeaky/RSynaptic: the recurrent ``nn.Linear`` adds its bias also at t = 0 (its input is the zero
  spike vector); a cycle edge carries zeros at t = 0, so the bias is split off into a constant
  (zero-weight Affine from the graph input) and the loop keeps only the weight.
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
    add_feedback,
    all_close,
    export_checks,
    exported,
    f64,
    flat_neurons,
    input_transform,
    negative_flatten_dims,
    neurons,
    start_import,
    swap_pool,
    uniform,
    unique_name,
)
from snnx.ir.semantics import set_graph_contract, set_node_contract

DT = 1e-4  # hard-coded in snntorch.export_nir


def _decay(tau: Any, dt: float) -> np.ndarray:
    """beta (or alpha) back from ``tau = dt/(1-beta)``; rounded to float32 because snnTorch's beta is
    float32 and the exporter's float32 tau lost a few bits of it."""
    return f64(np.float32(1.0 - dt / f64(tau)))


class SnntorchProfile(Profile):
    """Import files written by ``snntorch.export_nir.export_to_nir``; export for ``import_from_nir``."""

    name = "snntorch"
    verified = {"snntorch": "1.0.0", "nir": "1.0.8", "nirtorch": "2.6"}

    def detect(self, graph: nir.NIRGraph) -> Detection:
        flat, ns = flat_neurons(graph, (nir.LIF, nir.CubaLIF, nir.IF, nir.LI))
        if not ns:
            return Detection(self.name, 0.0, "no neurons")
        for name, n in ns:
            if isinstance(n, nir.LIF):
                ok = all_close(n.r, f64(n.tau) / DT) and all_close(n.v_leak, 0) and not all_close(n.r, 1)
            elif isinstance(n, nir.CubaLIF):
                ok = all_close(n.r, f64(n.tau_mem) / DT) and all_close(n.w_in, f64(n.tau_syn) / DT)
            else:
                ok = False  # export_to_nir writes no IF or LI
            if not ok:
                return Detection(self.name, 0.0, f"{name} does not have snnTorch's r = tau/1e-4 signature")
        conf = 0.8
        why = "every neuron has r = tau/1e-4, v_leak = 0 (export_to_nir's beta mapping)"
        if any(k.isdigit() for k in flat.nodes):
            conf, why = 0.85, why + "; nirtorch's numeric node names"
        elif any(k.startswith("_") and k[1:].isdigit() for k in flat.nodes):
            # nirtorch's fx tracer (_0, _1, ...) is what SpikingJelly's exporter uses, not export_to_nir.
            conf, why = 0.3, why + ", but the node names come from nirtorch's fx tracer (SpikingJelly's)"
        return Detection(self.name, conf, why)

    def import_(self, graph: nir.NIRGraph, assume: dict[str, Any]) -> Converted:
        reset = str(assume.get("reset", "subtract"))
        if reset not in ("subtract", "zero"):
            raise InteropError(f"snntorch: reset must be subtract or zero, got {reset!r}")
        dt = float(assume.get("dt", DT))
        out = start_import(graph)
        g = out.graph
        out.assumed.append(f"dt = {dt:g} (export_to_nir hard-codes 1e-4)")
        if "reset" in assume:
            out.notes.append(f"reset_mechanism = {reset!r} for every neuron (given)")
        else:
            out.assumed.append(
                "reset_mechanism = 'subtract' for every neuron (the file does not say; snnTorch's default; "
                "override with -A reset=zero)"
            )
        if reset == "subtract":
            out.assumed.append("reset_delay = True (snnTorch's default): the threshold is subtracted after the decay")
        self._split_recurrent_bias(g, out)
        from snnx.ir.schedule import schedule

        in_cycle = {dst for _, dst in schedule(g).back_edges} | {src for src, _ in schedule(g).back_edges}
        for name, n in neurons(g):
            if isinstance(n, nir.LIF):
                beta = _decay(n.tau, dt)
                g.nodes[name] = n = nir.LIF(
                    tau=dt / (1 - beta), r=1 / (1 - beta), v_leak=np.zeros_like(beta) + f64(n.v_leak),
                    v_threshold=f64(n.v_threshold), v_reset=np.zeros_like(f64(n.v_threshold)),
                )
                k = -(1 - beta) * f64(n.v_threshold)
            elif isinstance(n, nir.CubaLIF):
                beta, alpha = _decay(n.tau_mem, dt), _decay(n.tau_syn, dt)
                g.nodes[name] = n = nir.CubaLIF(
                    tau_mem=dt / (1 - beta), tau_syn=dt / (1 - alpha), r=1 / (1 - beta), w_in=1 / (1 - alpha),
                    v_leak=f64(n.v_leak), v_threshold=f64(n.v_threshold), v_reset=np.zeros_like(f64(n.v_threshold)),
                )
                k = -(1 - beta) * f64(n.v_threshold)
            else:
                raise InteropError(f"{type(n).__name__} is not written by snnTorch's exporter", node=name)
            if reset == "zero":
                if isinstance(n, nir.CubaLIF) or name in in_cycle:
                    # Synaptic/RLeaky/RSynaptic zero the membrane one step late, after integrating: no
                    # contract reset mode does that (specs/interop.md, section 2).
                    raise InteropError("reset_mechanism='zero' on a Synaptic/RLeaky/RSynaptic layer blanks the "
                                       "membrane one step after the spike, which the contract cannot express",
                                       node=name)
                set_node_contract(n, reset="value")
                continue
            set_node_contract(n, reset="subtract")
            shape = np.broadcast_shapes(np.shape(k), np.shape(f64(n.v_threshold)))
            k = np.broadcast_to(k, shape).copy()
            add_feedback(g, name, k, 0, dt, "reset_delay")
            if isinstance(n, nir.CubaLIF):
                # The kick enters through the synaptic current, which would carry alpha*k into the next
                # step; cancel that tail one step later so v sees exactly one kick of k.
                add_feedback(g, name, -np.broadcast_to(alpha, shape) * k, 1, dt, "reset_delay_tail")
        if reset == "subtract" and neurons(g, (nir.LIF, nir.CubaLIF)):
            out.notes.append("delayed subtract reset expressed as a self-loop Scale (+ Delay for Synaptic)")
        set_graph_contract(g, dt=dt)
        return out

    @staticmethod
    def _split_recurrent_bias(g: nir.NIRGraph, out: Converted) -> None:
        """RLeaky's recurrent Affine also adds its bias at t = 0: move the bias out of the loop."""
        from snnx.ir.schedule import schedule

        back = schedule(g).back_edges
        inputs = [k for k, n in sorted(g.nodes.items()) if isinstance(n, nir.Input)]
        for src, dst in sorted(back):
            node = g.nodes[src]
            if not isinstance(node, nir.Affine) or not np.any(f64(node.bias)):
                continue
            in_shape = np.asarray(g.nodes[inputs[0]].input_type["input"]).tolist() if inputs else []
            if len(in_shape) != 1:
                raise InteropError("a recurrent bias needs a 1-D graph input to be expressed", node=src)
            g.nodes[src] = nir.Linear(weight=f64(node.weight))
            cname = unique_name(g, f"{src}.bias_at_t0")
            bias = f64(node.bias)
            g.nodes[cname] = nir.Affine(weight=np.zeros((bias.shape[0], in_shape[0])), bias=bias)
            g.edges.append((inputs[0], cname))
            g.edges.append((cname, dst))
            out.notes.append(f"{src}: recurrent bias moved out of the loop (snnTorch adds it at t = 0 too)")

    # -- export ---------------------------------------------------------------------------------------
    #: import_from_nir maps these (IF becomes a Leaky, see below; SumPool2d is written as AvgPool2d).
    EXPORTABLE = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.AvgPool2d,
                  nir.SumPool2d, nir.LIF, nir.CubaLIF, nir.IF)
    #: An IF is written as a LIF whose beta = 1 - 1e-4/tau rounds to exactly 1.0 in float64.
    IF_TAU = DT * 2.0**60

    def export(self, graph: nir.NIRGraph) -> Converted:
        """Rewrite for ``snntorch.import_nir.import_from_nir`` (verified with snnTorch 1.0.0).

        Its conventions: dt hard-coded 1e-4 (``beta = 1 - 1e-4/tau``), every neuron reset to zero
        right after the spike (``reset_delay=False``), inputs unscaled (``r*dt/tau`` folded into one
        threshold per layer), ``v_leak = 0`` asserted, one threshold per layer, IF built as a Leaky
        with beta 0.9, NIR Flatten dims passed to ``torch.nn.Flatten`` as if they counted the batch.
        """
        g, dt = export_checks(graph, "snnTorch", self.EXPORTABLE, cycles=True)
        out = Converted(graph=g)
        for name, node in sorted(g.nodes.items()):
            if isinstance(node, nir.SumPool2d):
                swap_pool(g, name, nir.AvgPool2d)
                out.notes.append(f"{name}: SumPool2d written as AvgPool2d, kernel area folded into the next layer")
            elif isinstance(node, nir.Flatten):
                negative_flatten_dims(g, name, out)
        for name, node in neurons(g, (nir.LIF, nir.CubaLIF, nir.IF)):
            g.nodes[name] = self._export_neuron(g, name, node, dt, out)
        self._break_two_cycles(g, out)
        return Converted(graph=exported(g, self.name), notes=out.notes)

    @staticmethod
    def _break_two_cycles(g: nir.NIRGraph, out: Converted) -> None:
        """import_from_nir turns a neuron <-> weights 2-cycle into an RLeaky subgraph that nirtorch 2.6
        then fails on ('GraphModule' object has no attribute 'items'); an identity Linear on the edge
        back into the neuron makes it a 3-cycle, which nirtorch runs with the contract's one-step delay."""
        from snnx.interop.base import diag_node
        from snnx.ir.validate import infer_shapes

        edges = set(g.edges)
        for a, b in sorted(edges):
            # The importer's pattern: a dense node a and a neuron b feeding each other.
            if (b, a) not in edges or not isinstance(g.nodes[b], (nir.LIF, nir.CubaLIF)):
                continue
            if not isinstance(g.nodes[a], (nir.Affine, nir.Linear)):
                continue
            shape = tuple(int(s) for s in infer_shapes(g)[a])
            new = unique_name(g, f"{a}.identity")
            ident = diag_node(shape, np.ones(()), np.zeros(()), "recurrent weights", a)
            g.nodes[new] = nir.Linear(weight=f64(ident.weight)) if isinstance(ident, nir.Affine) else ident
            g.edges[:] = [(a, new) if e == (a, b) else e for e in g.edges] + [(new, b)]
            out.notes.append(f"{a} -> {b}: identity Linear inserted (import_from_nir's RNN subgraph path crashes)")

    def _export_neuron(self, g: nir.NIRGraph, name: str, n: nir.NIRNode, dt: float, out: Converted) -> nir.NIRNode:
        v_reset = f64(n.v_reset)
        v_leak = f64(getattr(n, "v_leak", v_reset))
        offset = np.zeros(())
        if isinstance(n, nir.CubaLIF) and not np.all(v_leak == v_reset):
            raise InteropError("v_leak != v_reset: snnTorch's Synaptic has no leak potential", node=name)
        # snnTorch resets to 0 and leaks to 0: shift v by v_reset. A LIF's leak towards v_leak != v_reset
        # is then a constant input (dt/tau)*(v_leak - v_reset) per step.
        thr = f64(n.v_threshold) - v_reset
        if isinstance(n, nir.LIF):
            tau = f64(n.tau) * DT / dt  # beta = 1 - 1e-4/tau must be 1 - dt/tau
            gain = (dt / f64(n.tau)) * f64(n.r)
            offset = (dt / f64(n.tau)) * (v_leak - v_reset)
        elif isinstance(n, nir.IF):
            tau = np.full(np.shape(thr), self.IF_TAU)
            gain = dt * f64(n.r)
        else:
            tau_mem, tau_syn = f64(n.tau_mem) * DT / dt, f64(n.tau_syn) * DT / dt
            gain = (dt / f64(n.tau_syn)) * f64(n.w_in) * (dt / f64(n.tau_mem)) * f64(n.r)
        if np.any(thr <= 0):
            raise InteropError("v_threshold <= v_reset: snnTorch's zero reset would fire on every step", node=name)
        # snnTorch's neuron integrates its input unscaled and fires at one threshold per layer:
        # v_snnTorch = v/gain, threshold thr/gain; otherwise v/thr with gain/thr and offset/thr on the input.
        shape = np.broadcast_shapes(np.shape(thr), np.shape(gain), np.shape(offset))
        theta = np.broadcast_to(thr / gain, shape)
        if uniform(theta) and not np.any(offset):
            vthr = np.full(shape or (1,), float(np.ravel(theta)[0]))
        else:
            input_transform(g, name, gain / thr, offset / thr, "snnTorch takes one threshold per layer")
            out.notes.append(f"{name}: input gain, leak and threshold folded into the incoming weights (threshold 1)")
            vthr = np.ones(shape or (1,))
        shape = vthr.shape
        zeros = np.zeros(shape)
        if isinstance(n, (nir.LIF, nir.IF)):
            tau = np.broadcast_to(tau, shape).copy()
            if isinstance(n, nir.IF):
                out.notes.append(f"{name}: IF written as a LIF with beta = 1 exactly (import_from_nir gives IF beta 0.9)")
            return nir.LIF(tau=tau, r=tau / DT, v_leak=zeros, v_threshold=vthr, v_reset=zeros)
        tau_mem, tau_syn = np.broadcast_to(tau_mem, shape).copy(), np.broadcast_to(tau_syn, shape).copy()
        return nir.CubaLIF(tau_mem=tau_mem, tau_syn=tau_syn, r=tau_mem / DT, w_in=tau_syn / DT, v_leak=zeros,
                           v_threshold=vthr, v_reset=zeros)


PROFILE = SnntorchProfile()
