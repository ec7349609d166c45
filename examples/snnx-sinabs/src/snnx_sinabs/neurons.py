"""Sinabs layers wrapped as :class:`snnx.torch.neuron.ContractNeuron` (imports torch and sinabs).

The membrane update, the spike and the reset are computed by Sinabs' own layers (``sinabs.layers.IAF``,
``ExpLeak``, ``LIF``) with Sinabs' own ``SingleSpike``, ``MembraneReset`` and ``MembraneSubtract``. The
wrapper only scales the input (``x' = gain*x + bias``, a per-neuron synaptic weight) and sets the
initial state, using the values of :func:`snnx_sinabs.fold.fold`. snnx's public contract neuron keeps
the bookkeeping: the node's name, ``dt`` and reset mode, and the decays at lowering, so that an
untrained model raises back to exactly the graph it came from.
"""

from __future__ import annotations

import copy
from typing import Any

import nir
import numpy as np
import sinabs.layers as sl
import torch
from sinabs.activation import MembraneReset, MembraneSubtract, SingleSpike
from torch import Tensor

from snnx.ir.semantics import i_init_of, v_init_of
from snnx.torch.neuron import ContractNeuron, TorchNeuron
from snnx_sinabs.fold import Folded, fold, strict_threshold

State = dict[str, Tensor]


def _t(value: Any) -> Tensor:
    return torch.tensor(np.array(value, dtype=np.float64), dtype=torch.float32)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy().copy()


def make_layer(folded: Folded) -> torch.nn.Module:
    """The Sinabs layer for ``folded`` (decays set as trainable ``alpha_*`` parameters)."""
    spike_kwargs: dict[str, Any] = {"spike_fn": None}
    if folded.threshold is not None:
        reset_fn = (
            MembraneSubtract(subtract_value=_t(folded.subtract))
            if folded.subtract is not None
            else MembraneReset(reset_value=0.0)
        )
        spike_kwargs = {
            "spike_fn": SingleSpike,
            "spike_threshold": torch.from_numpy(strict_threshold(folded.threshold)),
            "reset_fn": reset_fn,
        }
    if folded.layer == "IAF":
        return sl.IAF(**spike_kwargs)
    if folded.layer == "ExpLeak":
        layer = sl.ExpLeak(tau_mem=1.0, train_alphas=True, norm_input=False)
    else:
        layer = sl.LIF(
            tau_mem=1.0,
            tau_syn=None if folded.alpha_syn is None else 1.0,
            train_alphas=True,
            norm_input=False,
            **spike_kwargs,
        )
    # train_alphas makes alpha = exp(-1/tau) the parameter; set it to the contract's 1 - dt/tau directly
    # (no exp/log round trip, and dt/tau > 1 stays expressible).
    with torch.no_grad():
        layer.alpha_mem.data = _t(folded.alpha_mem)
        if folded.alpha_syn is not None:
            layer.alpha_syn.data = _t(folded.alpha_syn)
    return layer


class SinabsNeuron(ContractNeuron):
    """One NIR neuron node executed by a Sinabs layer, time-major in and out.

    :param name: the NIR node name (for messages).
    :param node: the NIR node (``I``, ``IF``, ``LI``, ``LIF``, ``CubaLI`` or ``CubaLIF``).
    :param dt: the contract time step.
    :raises snnx_sinabs.fold.FoldError: when Sinabs cannot reproduce the node exactly.
    """

    def __init__(self, name: str, node: nir.NIRNode, dt: float) -> None:
        super().__init__(name, node, dt)  # node_name, dt, reset_mode (None unless spiking), nir_type
        self.kind = self.nir_type
        self.node = copy.deepcopy(node)
        self.folded = fold(self.kind, node, dt, self.reset_mode, v_init_of(node), i_init_of(node))
        self.layer = make_layer(self.folded)
        self.register_buffer("gain", _t(self.folded.gain))
        self.register_buffer("bias", _t(self.folded.bias))
        self.register_buffer("v_mem0", _t(self.folded.v_mem0))
        self.register_buffer("i_syn0", _t(0.0 if self.folded.i_syn0 is None else self.folded.i_syn0))
        # What the decays were at lowering: to_nir exports the original parameters exactly until trained.
        for key, alpha in self._alphas().items():
            self.remember(key, getattr(self.folded, key), alpha)

    def _alphas(self) -> dict[str, Tensor]:
        names = ("alpha_mem", "alpha_syn")
        return {k: getattr(self.layer, k) for k in names if isinstance(getattr(self.layer, k, None), Tensor)}

    # -- TorchNeuron ----------------------------------------------------------------------------------
    def init_state(self, x: Tensor) -> State:
        state = {"v_mem": (self.v_mem0 + torch.zeros_like(x)).to(x.dtype)}
        if self.folded.alpha_syn is not None:
            state["i_syn"] = (self.i_syn0 + torch.zeros_like(x)).to(x.dtype)
        return state

    def _load_state(self, state: State) -> None:
        # Sinabs keeps its state in buffers and uses them when their shape matches the input.
        for key, value in state.items():
            setattr(self.layer, key, value)

    def _read_state(self) -> State:
        state = {"v_mem": self.layer.v_mem}
        if self.folded.alpha_syn is not None:
            state["i_syn"] = self.layer.i_syn
        return state

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        self._load_state(state)
        y = self.layer((x * self.gain + self.bias)[:, None])[:, 0]
        return y, self._read_state()

    def forward(self, x: Tensor) -> Tensor:
        """Run ``(T, batch, *shape)`` through the Sinabs layer in one call (Sinabs is batch-major)."""
        self._load_state(self.init_state(x[0]))
        y = self.layer((x * self.gain + self.bias).movedim(0, 1))
        return y.movedim(1, 0)

    # -- export ---------------------------------------------------------------------------------------
    def trained(self) -> bool:
        """Whether a decay differs from its value at lowering (then :meth:`to_nir` recomputes taus)."""
        return any(self.changed(key, alpha) for key, alpha in self._alphas().items())

    def to_nir(self) -> nir.NIRNode:
        """The NIR node for the layer's current decays; the original node while untrained.

        Sinabs trains ``alpha_mem``/``alpha_syn``; the input scale, leak and threshold are fixed buffers.
        After training, ``tau = dt/(1 - alpha)``, and ``r``/``v_leak``/``w_in`` are re-derived so the
        exported node computes exactly what the Sinabs layer does.
        """
        if not self.trained() or self.kind in ("I", "IF"):
            return copy.deepcopy(self.node)
        h = self.dt
        shift = np.asarray(self.folded.shift, dtype=np.float64)
        k_mem = 1.0 - _numpy(self.layer.alpha_mem)
        params = {
            k: copy.deepcopy(v) for k, v in vars(self.node).items() if k not in ("input_type", "output_type", "metadata")
        }
        if self.kind in ("LI", "LIF"):
            params["tau"] = h / k_mem
            params["r"] = _numpy(self.gain) / k_mem
            params["v_leak"] = _numpy(self.bias) / k_mem + shift
        else:
            alpha_syn = _numpy(self.layer.alpha_syn)
            k_syn = 1.0 - alpha_syn
            r = np.asarray(self.node.r, dtype=np.float64)
            params["tau_mem"] = h / k_mem
            params["tau_syn"] = h / k_syn
            # i_syn = k_mem*r*i, so w_in follows from gain = k_mem*r*k_syn*w_in/alpha_syn (r kept).
            with np.errstate(divide="ignore", invalid="ignore"):
                w_in = _numpy(self.gain) * alpha_syn / (k_mem * r * k_syn)
            params["w_in"] = np.where(r != 0, w_in, np.asarray(self.node.w_in, dtype=np.float64))
        new = type(self.node)(**params)
        new.metadata = copy.deepcopy(self.node.metadata) if isinstance(self.node.metadata, dict) else {}
        return new


def neuron_factory(name: str, node: nir.NIRNode, dt: float) -> TorchNeuron:
    """``build_graph_module``'s factory: a :class:`SinabsNeuron` for every neuron node."""
    return SinabsNeuron(name, node, dt)
