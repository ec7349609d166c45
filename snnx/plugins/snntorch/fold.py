"""The snnTorch parameter tables (``specs/backends/snntorch.md``) and the refusals: numpy only, no torch.

``LIF``/``IF``/``LI``/``I`` nodes become :class:`snntorch.Leaky` with snnTorch's own reset mechanism;
the contract's ``dt/tau``, ``r``, ``v_leak``, ``v_reset``, reset order and ``v_init`` are folded into
``beta``, ``threshold``, an input scale, an input bias and a one-off drive at the first step
(:func:`leaky_table`). ``CubaLIF``/``CubaLI`` nodes become :class:`snntorch.Synaptic` whose reset the
wrapper applies (:func:`synaptic_table`). :func:`fold` picks the table for a node; the backend's
refusals call it to find what snnTorch cannot express, and ``lower`` calls it once per neuron and hands
the table to the neuron class (:mod:`snnx.plugins.snntorch.neurons`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from snnx.errors import UnsupportedNodeError
from snnx.ir.nodes import find_kind
from snnx.ir.semantics import i_init_of, reset_of, signed_of, v_init_of
from snnx.torch.params import f64

#: Node kinds lowered to ``snntorch.Leaky`` (:func:`leaky_table`).
LEAKY_KINDS = frozenset({"LIF", "IF", "LI", "I"})
#: Node kinds lowered to ``snntorch.Synaptic`` (:func:`synaptic_table`).
SYNAPTIC_KINDS = frozenset({"CubaLIF", "CubaLI"})
#: Node kinds with a membrane decay ``beta = 1 - dt/tau`` (the others integrate, ``beta = 1``).
LEAKING_KINDS = frozenset({"LIF", "LI"})


def _decay(name: str, tau: Any, dt: float, what: str) -> np.ndarray:
    """``dt/tau``, refusing what snnTorch's clamp of beta/alpha to [0, 1] would silently change."""
    tau = f64(tau)
    if np.any(tau <= 0):
        msg = f"node {name!r}: {what} must be > 0 (got {tau.min():g}); snnTorch cannot express it"
        raise UnsupportedNodeError(msg)
    a = dt / tau
    if np.any(a > 1):
        msg = (
            f"node {name!r}: dt/{what} = {a.max():g} > 1, so beta = 1 - dt/{what} < 0, which snnTorch clamps "
            f"to 0 (a different model); lower with a smaller dt (dt <= {tau.min():g})"
        )
        raise UnsupportedNodeError(msg)
    return a


@dataclass
class LeakyTable:
    """snnTorch ``Leaky`` parameters that reproduce one contract neuron (see ``specs/backends/snntorch.md``).

    snnTorch computes ``mem = beta*mem + drive`` with ``drive = scale*x + bias`` (plus ``first`` at
    step 0) and resets with ``mechanism`` from the previous step's ``mem > threshold``.
    """

    beta: np.ndarray
    threshold: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    first: np.ndarray
    mechanism: str  # "zero" | "subtract" | "none"
    spiking: bool
    #: signed spikes (contract v2): ``mechanism`` is "none" and the wrapper applies the signed reset.
    signed: bool = False


def leaky_table(name: str, node: nir.NIRNode, dt: float) -> LeakyTable:
    """Fold a LIF/IF/LI/I node and its contract into snnTorch ``Leaky`` parameters (exactly)."""
    kind = find_kind(node)
    if kind is None or kind.name not in LEAKY_KINDS:
        msg = f"node {name!r}: snnTorch's Leaky takes {', '.join(sorted(LEAKY_KINDS))}, not {type(node).__name__}"
        raise UnsupportedNodeError(msg)
    if kind.name in LEAKING_KINDS:
        a = _decay(name, node.tau, dt, "tau")
        beta = 1.0 - a
        scale = a * f64(node.r)
        bias = a * f64(node.v_leak)
    else:
        scale = dt * f64(node.r)
        beta = np.ones_like(scale)
        bias = np.zeros_like(scale)
    v_init = v_init_of(node)
    spiking = kind.spiking
    signed = spiking and signed_of(node)
    if not spiking or signed:
        # Signed spikes: Leaky only integrates (no reset, threshold v_threshold, so mem is the
        # contract's v after the update); the wrapper emits the signed spikes and subtracts.
        threshold = f64(node.v_threshold) if signed else np.ones(())
        mechanism = "none"
        first = beta * v_init
    elif reset_of(node) == "subtract":
        # snnTorch subtracts threshold*s[t-1] from the *pre-reset* mem after the decay; the contract
        # subtracts v_threshold before the decay, i.e. beta*v_threshold. With mem = v' - thr*(1-beta)
        # and threshold' = beta*thr both agree (derivation in specs/backends/snntorch.md).
        thr = f64(node.v_threshold)
        threshold = beta * thr
        bias = bias - thr * (1.0 - beta) ** 2
        mechanism = "subtract"
        first = beta * (v_init - thr * (1.0 - beta)) + np.where(threshold < 0, threshold, 0.0)
    else:
        # Zero reset in the shifted coordinate u = v - v_reset is the contract's reset to v_reset.
        v_reset = f64(node.v_reset)
        threshold = f64(node.v_threshold) - v_reset
        bias = bias + (beta - 1.0) * v_reset
        mechanism = "zero"
        first = beta * (v_init - v_reset)
    beta, threshold, scale, bias, first = np.broadcast_arrays(beta, threshold, scale, bias, first)
    return LeakyTable(
        beta=beta.copy(),
        threshold=threshold.copy(),
        scale=scale.copy(),
        bias=bias.copy(),
        first=first.copy(),
        mechanism=mechanism,
        spiking=spiking,
        signed=signed,
    )


@dataclass
class SynapticTable:
    """snnTorch ``Synaptic`` parameters for one CubaLIF/CubaLI node.

    ``syn = alpha*syn + scale*x + bias`` is ``k*i + b`` of the contract (``k = dt/tau_mem * r``,
    ``b = dt/tau_mem * v_leak``), so ``mem = beta*v + syn`` is the contract's voltage update with the
    new current. The wrapper applies the reset; ``syn_init``/``v_init`` are the initial state.
    """

    alpha: np.ndarray
    beta: np.ndarray
    threshold: np.ndarray
    v_reset: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    syn_init: np.ndarray
    v_init: np.ndarray
    reset: str | None
    #: signed spikes (contract v2, reset "subtract"): the wrapper applies the signed rule.
    signed: bool = False


def synaptic_table(name: str, node: nir.NIRNode, dt: float) -> SynapticTable:
    """Fold a CubaLIF/CubaLI node and its contract into snnTorch ``Synaptic`` parameters (exactly)."""
    kind = find_kind(node)
    if kind is None or kind.name not in SYNAPTIC_KINDS:
        msg = f"node {name!r}: snnTorch's Synaptic takes {', '.join(sorted(SYNAPTIC_KINDS))}, not {type(node).__name__}"
        raise UnsupportedNodeError(msg)
    a_syn = _decay(name, node.tau_syn, dt, "tau_syn")
    a_mem = _decay(name, node.tau_mem, dt, "tau_mem")
    k = a_mem * f64(node.r)
    b = a_mem * f64(node.v_leak)
    w_in = f64(getattr(node, "w_in", 1.0))
    spiking = kind.spiking
    threshold = f64(node.v_threshold) if spiking else np.ones(())
    v_reset = f64(node.v_reset) if spiking else np.zeros(())
    arrays = np.broadcast_arrays(
        1.0 - a_syn, 1.0 - a_mem, threshold, v_reset, k * a_syn * w_in, a_syn * b,
        k * i_init_of(node) + b, v_init_of(node),
    )
    alpha, beta, threshold, v_reset, scale, bias, syn_init, v_init = (x.copy() for x in arrays)
    return SynapticTable(
        alpha=alpha, beta=beta, threshold=threshold, v_reset=v_reset, scale=scale, bias=bias,
        syn_init=syn_init, v_init=v_init, reset=reset_of(node) if spiking else None,
        signed=spiking and signed_of(node),
    )


Table = LeakyTable | SynapticTable


def fold(name: str, node: nir.NIRNode, dt: float) -> Table:
    """The snnTorch table of neuron ``node`` at time step ``dt``: :func:`leaky_table` or :func:`synaptic_table`.

    :raises UnsupportedNodeError: naming the node, when snnTorch cannot reproduce it exactly.
    """
    kind = find_kind(node)
    if kind is not None and kind.name in SYNAPTIC_KINDS:
        return synaptic_table(name, node, dt)
    return leaky_table(name, node, dt)


def node_refusals(name: str, node: nir.NIRNode, dt: float) -> list[str]:
    """Why snnTorch cannot reproduce node ``name`` exactly at time step ``dt``; empty when it can.

    Neurons: whatever :func:`fold` refuses (``beta`` outside [0, 1]). Dense layers: torch's
    ``nn.Linear`` takes a 2-D weight only.
    """
    kind = find_kind(node)
    if kind is None:
        return []  # the capability check names unknown kinds
    if kind.neuron:
        try:
            fold(name, node, dt)
        except UnsupportedNodeError as exc:
            return [str(exc)]
    elif kind.name in ("Affine", "Linear") and getattr(node.weight, "ndim", 2) != 2:
        return [f"node {name!r}: {type(node).__name__} weight of shape {node.weight.shape} is not 2-D"]
    return []
