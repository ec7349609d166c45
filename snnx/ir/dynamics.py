"""The reference simulator's state updates (``specs/semantics.md`` §4-5), numpy float64.

:class:`NeuronState` is one neuron node's membrane (and synaptic current) with its one-step update;
:class:`DelayState` is a ``Delay`` node's history. :mod:`snnx.ir.nodes` assigns the class per kind;
what kind of neuron a node is comes from its parameters (a ``tau``-less neuron integrates, a
``tau_syn`` neuron updates its current first), so no update dispatches on the node's class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snnx.ir.ops import f64 as _f64
from snnx.ir.semantics import i_init_of, reset_of, signed_of, v_init_of

Array = np.ndarray


class State:
    """State of one stateful node for one run: :meth:`step` advances it by one time step."""

    def __init__(self, node: Any, dt: float, x0: Array, *, spiking: bool = False) -> None:
        self.node = node
        self.dt = dt

    def step(self, x: Array) -> Array:
        """Advance one step on input ``x`` (batch, *shape) and return the node's output."""
        raise NotImplementedError


class DelayState(State):
    """``y[t] = x[t - round(delay/dt)]``, zeros before the first input arrives."""

    def __init__(self, node: Any, dt: float, x0: Array, *, spiking: bool = False) -> None:
        super().__init__(node, dt, x0)
        self.steps = np.rint(_f64(node.delay) / dt).astype(np.int64)
        # A ring buffer of max_depth past inputs, grown on demand: a delay far longer than the run
        # (a damaged file's 1e6 s) costs memory for the steps actually run, not for the delay.
        self.max_depth = int(self.steps.max(initial=0)) + 1
        self.history = np.zeros((min(self.max_depth, 16), *x0.shape))
        self.t = 0

    def step(self, x: Array) -> Array:
        depth = self.history.shape[0]
        if self.t >= depth and depth < self.max_depth:  # not wrapped yet: grow by appending zeros
            grown = min(2 * depth, self.max_depth)
            self.history = np.concatenate([self.history, np.zeros((grown - depth, *x.shape))])
            depth = grown
        self.history[self.t % depth] = x
        idx = (self.t - self.steps) % depth
        out = np.take_along_axis(self.history, np.broadcast_to(idx, x.shape)[None], axis=0)[0]
        out = np.where(self.t - self.steps >= 0, out, 0.0)
        self.t += 1
        return out


class NeuronState(State):
    """Membrane ``v`` (and current ``i``) of an I, IF, LI, LIF, CubaLI or CubaLIF node.

    ``spiking`` says whether the node fires and resets (then its output is spikes, else ``v``).
    """

    def __init__(self, node: Any, dt: float, x0: Array, *, spiking: bool = False) -> None:
        super().__init__(node, dt, x0)
        shape = x0.shape
        self.v = np.broadcast_to(v_init_of(node), shape).astype(np.float64).copy()
        self.cuba = getattr(node, "tau_syn", None) is not None
        tau = getattr(node, "tau_mem", None) if self.cuba else getattr(node, "tau", None)
        self.tau = None if tau is None else _f64(tau)
        if self.cuba:
            self.i = np.broadcast_to(i_init_of(node), shape).astype(np.float64).copy()
        self.reset = reset_of(node) if spiking else None
        # Signed spikes (contract version 2): the net spike count n is state too.
        self.signed = spiking and signed_of(node)
        if self.signed:
            self.n = np.zeros(shape)

    def step(self, x: Array) -> Array:
        node, dt = self.node, self.dt
        if self.cuba:  # the current first, then the voltage with the new current
            self.i = self.i + (dt / _f64(node.tau_syn)) * (-self.i + _f64(node.w_in) * x)
            x = self.i
        if self.tau is None:  # I, IF: a perfect integrator
            self.v = self.v + dt * _f64(node.r) * x
        else:
            self.v = self.v + (dt / self.tau) * (_f64(node.v_leak) - self.v + _f64(node.r) * x)
        if self.reset is None:
            return self.v.copy()
        vth = _f64(node.v_threshold)
        if self.signed:
            return self._signed_spikes(vth)
        spikes = self.v > vth
        if self.reset == "subtract":
            self.v = self.v - vth * spikes
        else:
            self.v = np.where(spikes, _f64(node.v_reset), self.v)
        return spikes.astype(np.float64)

    def _signed_spikes(self, vth: Array) -> Array:
        """Signed spike and reset (reset "subtract" only): +1 where ``v > v_threshold``, else -1 where
        ``v <= 0`` and the net count ``n`` is positive; then ``v -= v_threshold * s``, ``n += s``."""
        pos = self.v > vth
        neg = ~pos & (self.v <= 0) & (self.n > 0)
        s = pos.astype(np.float64) - neg.astype(np.float64)
        self.v = self.v - vth * s
        self.n = self.n + s
        return s
