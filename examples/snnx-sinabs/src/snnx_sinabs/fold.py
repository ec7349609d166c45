"""The parameter table: how a NIR neuron under the snnx contract becomes a Sinabs layer.

Pure numpy, no torch or sinabs import, so the table can be tested (and refusals computed) anywhere
(:mod:`snnx.torch.params` is snnx's torch-free parameter reader).

The snnx contract (``specs/semantics.md`` of snnx, step ``h = dt``)::

    I:       v <- v + h*r*x
    IF:      v <- v + h*r*x;                       s = v > theta; reset
    LI:      v <- v + h/tau*(v_leak - v + r*x)
    LIF:     v <- v + h/tau*(v_leak - v + r*x);    s = v > theta; reset
    CubaLI:  i <- i + h/tau_syn*(-i + w_in*x);  v <- v + h/tau_mem*(v_leak - v + r*i)   (new i)
    CubaLIF: the CubaLI update;                    s = v > theta; reset
    reset "value": v = v_reset where s;  reset "subtract": v = v - theta*s

Sinabs (``sinabs.layers.LIF`` with ``norm_input=False``, ``train_alphas=True``; IAF is ``alpha_mem = 1``)::

    i_syn <- alpha_syn*(i_syn + x')      (or i_syn = x' without tau_syn)
    v_mem <- alpha_mem*v_mem + i_syn
    SingleSpike: s = (v_mem - spike_threshold >= 0)
    MembraneReset(0): v_mem = v_mem*(s == 0)     MembraneSubtract(theta): v_mem = v_mem - theta*s

The backend feeds the layer ``x' = gain*x + bias`` and runs Sinabs in shifted coordinates
``v_mem = v - shift``. Matching the two updates term by term gives :func:`fold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from snnx.torch.params import f64  # numpy only: snnx's torch package imports no torch at this level

#: NIR neuron classes the backend lowers to Sinabs layers.
NEURON_KINDS = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")
SPIKING_KINDS = ("IF", "LIF", "CubaLIF")


class FoldError(ValueError):
    """A node whose dynamics Sinabs cannot reproduce exactly; the message says why and what to change."""


@dataclass(frozen=True)
class Folded:
    """Sinabs-side values for one neuron node (arrays broadcast against the neuron shape).

    :ivar layer: ``"IAF"``, ``"ExpLeak"`` or ``"LIF"`` (the ``sinabs.layers`` class).
    :ivar alpha_mem: membrane decay per step (``None`` for IAF, whose decay is 1).
    :ivar alpha_syn: synaptic decay per step (``None`` without synaptic state).
    :ivar gain: input scale, ``x' = gain*x + bias``.
    :ivar bias: constant input per step (the leak towards ``v_leak``).
    :ivar shift: ``v_mem = v - shift``; makes a non-zero ``v_reset`` a reset to zero.
    :ivar threshold: the snnx threshold in shifted coordinates (``theta - shift``), ``None`` if not spiking.
    :ivar subtract: the value subtracted on a spike (``theta``) for reset "subtract", else ``None``.
    :ivar v_mem0: initial ``v_mem`` (``v_init - shift``).
    :ivar i_syn0: initial ``i_syn`` (scaled synaptic current), ``None`` without synaptic state.
    """

    layer: str
    alpha_mem: np.ndarray | None
    alpha_syn: np.ndarray | None
    gain: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    threshold: np.ndarray | None
    subtract: np.ndarray | None
    v_mem0: np.ndarray
    i_syn0: np.ndarray | None


def strict_threshold(theta: np.ndarray) -> np.ndarray:
    """The float32 threshold that makes Sinabs' ``v >= t`` equal snnx's ``v > theta``.

    For float32 ``v``, ``v > theta32`` holds exactly when ``v >= nextafter(theta32, +inf)``, and
    ``SingleSpike`` computes ``v - t >= 0``, whose sign IEEE subtraction never gets wrong.
    """
    theta32 = np.asarray(theta, dtype=np.float32)
    return np.nextafter(theta32, np.float32(np.inf)).astype(np.float32)


def fold(kind: str, node: Any, dt: float, reset: str, v_init: Any, i_init: Any) -> Folded:
    """Sinabs parameters reproducing NIR node ``node`` (class name ``kind``) under the contract.

    :param reset: the node's reset mode (``"value"`` or ``"subtract"``), ignored for non-spiking kinds.
    :param v_init: initial membrane state; ``i_init`` initial synaptic current (Cuba kinds).
    :raises FoldError: when Sinabs cannot reproduce the node exactly.
    """
    if kind not in NEURON_KINDS:
        msg = f"Sinabs has no layer for NIR {kind}; supported neurons are {', '.join(NEURON_KINDS)}"
        raise FoldError(msg)
    h = float(dt)
    spiking = kind in SPIKING_KINDS
    theta = f64(node.v_threshold) if spiking else None
    if spiking and reset == "value":
        # Sinabs' MembraneReset(c) computes v*(s==0) + c, adding c to neurons that did NOT spike too;
        # only c = 0 is a reset, so run in coordinates where v_reset is zero.
        shift = f64(node.v_reset)
    else:
        shift = np.zeros(())
    threshold = theta - shift if spiking else None
    subtract = theta if spiking and reset == "subtract" else None
    v_mem0 = f64(v_init) - shift

    if kind in ("I", "IF"):
        return Folded("IAF", None, None, h * f64(node.r), np.zeros(()), shift, threshold, subtract, v_mem0, None)
    if kind in ("LI", "LIF"):
        k = h / f64(node.tau)
        return Folded(
            "ExpLeak" if kind == "LI" else "LIF",
            1.0 - k,
            None,
            k * f64(node.r),
            k * (f64(node.v_leak) - shift),
            shift,
            threshold,
            subtract,
            v_mem0,
            None,
        )
    # CubaLI / CubaLIF: Sinabs adds i_syn to v_mem unscaled, so its i_syn is the contract's current
    # times h/tau_mem*r, and it scales the input *after* adding it (alpha_syn*(i + x')).
    k_mem = h / f64(node.tau_mem)
    k_syn = h / f64(node.tau_syn)
    alpha_syn = 1.0 - k_syn
    if np.any(alpha_syn == 0):
        msg = (
            "tau_syn equals dt, so the synaptic decay per step is 0 and Sinabs' alpha_syn*(i + x) "
            "cannot carry the input; use a smaller dt"
        )
        raise FoldError(msg)
    leak = f64(node.v_leak) - shift
    if np.any(leak != 0):
        what = "v_leak - v_reset" if reset == "value" and kind == "CubaLIF" else "v_leak"
        msg = (
            f"{what} is non-zero, and Sinabs' synaptic LIF has no constant drive into v_mem "
            f"(only alpha_mem*v_mem + i_syn); set v_leak to {'v_reset' if what != 'v_leak' else '0'}"
        )
        raise FoldError(msg)
    scale = k_mem * f64(node.r)
    gain = scale * k_syn * f64(node.w_in) / alpha_syn
    return Folded(
        "LIF",
        1.0 - k_mem,
        alpha_syn,
        gain,
        np.zeros(()),
        shift,
        threshold,
        subtract,
        v_mem0,
        scale * f64(i_init),
    )
