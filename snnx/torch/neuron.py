"""The neuron side of the torch executor, public for every torch backend (built-in or third-party).

:class:`TorchNeuron` is the interface :func:`snnx.torch.graph.build_graph_module` runs: one module per
NIR neuron node (``init_state``, ``step``, ``to_nir``, optionally a faster ``forward``).

:class:`ContractNeuron` is a :class:`TorchNeuron` that does the bookkeeping every *wrapper* of a
framework's own neuron class needs (the built-in Norse and SpikingJelly backends, and the Sinabs
example use it): the node's name, ``dt`` and reset mode; the ``v_init``/``i_init`` buffers; and the
float64 values each NIR parameter had when it was lowered, so that an untrained model raises back to
*exactly* the graph it came from while a trained one raises back its trained values. A subclass folds
its framework's parameters in ``__init__`` and records each one with :meth:`ContractNeuron.remember`
(or :meth:`ContractNeuron.scale_parameter`), then reads it back in ``to_nir`` with
:meth:`ContractNeuron.recover`::

    from snnx.torch.neuron import ContractNeuron, f64

    class MyLIF(ContractNeuron):
        def __init__(self, name, node, dt):
            super().__init__(name, node, dt)
            self.register_buffer("decay", torch.as_tensor(1 - dt / f64(node.tau)))
            self.remember("tau", node.tau, self.decay)
        def init_state(self, x):
            return self.initial("v_init", x)
        def step(self, x, v): ...
        def to_nir(self):
            tau = self.recover("tau", self.decay, lambda d: self.dt / (1 - d))
            return nir.LIF(tau=tau, ..., metadata=self.contract_metadata())

Guide: ``specs/plugins.md`` ("Reusing the contract neuron"). Imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor, nn

from snnx.errors import UnsupportedNodeError
from snnx.ir.nodes import find_kind
from snnx.ir.semantics import i_init_of, reset_of, signed_of, v_init_of
from snnx.torch.params import f64, is_uniform

__all__ = [
    "ContractNeuron",
    "TorchNeuron",
    "affine",
    "bias_buffer",
    "f64",
    "is_uniform",
    "neuron_class",
    "scale_buffer",
]


# -- the neuron interface -------------------------------------------------------------------------------
class TorchNeuron(nn.Module):
    """Base class of a stateful node (a NIR neuron, or a Delay) lowered to a torch module.

    A backend subclasses it once per framework neuron it wraps. Subclasses implement
    :meth:`init_state`, :meth:`step` and :meth:`to_nir`; :meth:`forward` loops :meth:`step` over time
    and may be overridden with a faster multi-step path that computes the same thing.

    Shapes: ``x`` in :meth:`init_state` and :meth:`step` is one time step ``(batch, *shape)``;
    :meth:`forward` takes and returns ``(T, batch, *shape)``. State never outlives a call of
    :meth:`forward` (every run starts from the contract's initial state).
    """

    #: Name of the NIR node this module was lowered from (set by subclasses; used in messages).
    node_name: str = "?"

    def init_state(self, x: Tensor) -> Any:
        """The initial state for a batch shaped like ``x`` (one step, ``(batch, *shape)``)."""
        msg = f"{type(self).__name__} must implement init_state(x)"
        raise NotImplementedError(msg)

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Advance one time step: returns ``(output, new_state)``; ``x`` is ``(batch, *shape)``."""
        msg = f"{type(self).__name__} must implement step(x, state)"
        raise NotImplementedError(msg)

    def forward(self, x: Tensor) -> Tensor:
        """Run a whole sequence ``(T, batch, *shape)`` from the initial state."""
        state = self.init_state(x[0])
        outputs = []
        # unbind, not x[t]: the backward of T separate x[t] selects fills T full-size zero tensors
        # (O(T^2) memory traffic); unbind's backward is one stack.
        for x_t in x.unbind(0):
            y, state = self.step(x_t, state)
            outputs.append(y)
        return torch.stack(outputs)

    def to_nir(self) -> nir.NIRNode:
        """The node with the module's current parameters and its ``metadata["snnx"]`` contract entries.

        Use :func:`snnx.ir.semantics.set_node_contract` to write ``reset``/``v_init``/``i_init``.
        """
        msg = f"{type(self).__name__} must implement to_nir()"
        raise NotImplementedError(msg)


def neuron_class(
    backend: str, neurons: Mapping[str, type[TorchNeuron]], name: str, node: nir.NIRNode
) -> type[TorchNeuron]:
    """The backend's class for neuron ``node``, looked up by its node-kind name (``"LIF"``, ...).

    :param backend: the backend's name, for the message.
    :param neurons: the backend's classes by kind name (:data:`snnx.ir.nodes.KINDS` keys).
    :param name: the node's name, for the message.
    :raises UnsupportedNodeError: naming the node when the backend has no class for its kind.
    """
    kind = find_kind(node)
    cls = neurons.get(kind.name) if kind is not None else None
    if cls is None:
        msg = (
            f"Backend {backend!r} has no neuron for node {name!r} ({type(node).__name__}); "
            f"it has {', '.join(sorted(neurons))}"
        )
        raise UnsupportedNodeError(msg)
    return cls


def _unchanged(now: np.ndarray, folded: np.ndarray, dtype: torch.dtype) -> bool:
    """Whether ``now`` (a tensor of ``dtype``, as float64) is ``folded`` cast to ``dtype``."""
    cast = torch.as_tensor(folded, dtype=torch.float64).to(dtype).double().numpy()
    return now.shape == cast.shape and bool(np.array_equal(now, cast))


class ContractNeuron(TorchNeuron):
    """A :class:`TorchNeuron` wrapping a framework's neuron, with the bookkeeping of the module docstring.

    Subclasses build their framework cell in ``__init__`` (after calling this one), implement
    :meth:`init_state`, :meth:`step` and :meth:`to_nir`, and may override :meth:`forward`.

    :param name: the NIR node's (flattened) name, used in error messages.
    :param node: the NIR neuron node, with its snnx contract metadata.
    :param dt: the graph's time step.
    """

    def __init__(self, name: str, node: nir.NIRNode, dt: float) -> None:
        super().__init__()
        self.node_name = name
        self.nir_type = type(node).__name__
        self.dt = float(dt)
        kind = find_kind(node)
        self.reset_mode = reset_of(node) if kind is not None and kind.spiking else None
        #: signed spikes (contract version 2): the subclass applies :func:`snnx.torch.signed.signed_step`.
        self.signed = kind is not None and kind.spiking and signed_of(node)
        # The float64 values the node came with, and the tensors they were folded into:
        # an untrained parameter raises back to its original float64 value, not a rounded one.
        self._original: dict[str, np.ndarray] = {}
        self._folded: dict[str, np.ndarray] = {}
        self.register_buffer("v_init", torch.as_tensor(v_init_of(node), dtype=torch.float64))
        self.remember("v_init", v_init_of(node), self.v_init)
        if kind is not None and kind.cuba:
            self.register_buffer("i_init", torch.as_tensor(i_init_of(node), dtype=torch.float64))
            self.remember("i_init", i_init_of(node), self.i_init)

    # -- parameters ---------------------------------------------------------------------------------
    def remember(self, key: str, original: Any, folded: torch.Tensor) -> None:
        """Record the float64 ``original`` of a NIR parameter and the tensor it was folded into."""
        self._original[key] = f64(original)
        self._folded[key] = folded.detach().cpu().double().numpy().copy()

    def scale_parameter(self, buffer: str, key: str, original: Any) -> None:
        """Register NIR parameter ``original`` as the scale ``buffer`` (:func:`scale_buffer`), remembered as ``key``.

        :meth:`recover_scale` reads it back.
        """
        scale_buffer(self, buffer, original)
        self.remember(key, original, torch.as_tensor(f64(original), dtype=torch.float64))

    def changed(self, key: str, current: torch.Tensor) -> bool:
        """Whether ``current``, the folded tensor of parameter ``key``, differs from its value at lowering.

        A cast of the whole module (``.double()``) is no change; training is.
        """
        now = current.detach().cpu().double().numpy()
        return not _unchanged(now, self._folded[key], current.dtype)

    def recover(self, key: str, current: torch.Tensor, unfold: Any = None) -> np.ndarray:
        """The NIR value of parameter ``key``, given its current folded tensor.

        Unchanged since lowering: the original float64 value. Changed (trained): ``unfold`` of the
        current value in float64 (the value itself when ``unfold`` is ``None``), reshaped like the original.
        """
        original = self._original[key]
        if not self.changed(key, current):
            return original.copy()
        now = current.detach().cpu().double().numpy()
        value = np.asarray(now if unfold is None else unfold(now), dtype=np.float64)
        return value.reshape(original.shape) if value.size == original.size else value

    def recover_scale(self, key: str, current: torch.Tensor | None) -> np.ndarray:
        """:meth:`recover` for a scale registered by :meth:`scale_parameter` (``None`` = all ones)."""
        if current is None:
            return self._original[key].copy()
        return self.recover(key, current)

    def contract_metadata(self) -> dict[str, Any]:
        """``metadata["snnx"]`` for :meth:`to_nir`: reset mode, signed spikes and initial state."""
        meta: dict[str, Any] = {}
        if self.reset_mode is not None:
            meta["reset"] = self.reset_mode
        if self.signed:
            meta["signed"] = True
        for key in ("v_init", "i_init"):
            if key in self._original:
                meta[key] = self.recover(key, getattr(self, key))
        return {"snnx": meta}

    def initial(self, buffer: str, x: torch.Tensor) -> torch.Tensor:
        """A fresh state tensor shaped like ``x`` (batch, *shape) filled from an init buffer."""
        init = getattr(self, buffer).to(dtype=x.dtype, device=x.device)
        return init.expand_as(x).clone()

    def extra_repr(self) -> str:
        reset = f", reset={self.reset_mode!r}" if self.reset_mode else ""
        reset += ", signed" if self.signed else ""
        return f"node={self.node_name!r}, type={self.nir_type}, dt={self.dt!r}{reset}"


def scale_buffer(module: nn.Module, name: str, value: np.ndarray) -> None:
    """Register ``value`` as a buffer, or ``None`` when it is exactly 1 everywhere.

    Multiplying by 1.0 is exact, but skipping it keeps the lowered model as lean as a hand-written one.
    Buffers are float64; :func:`snnx.torch.graph.build_graph_module` casts the module to its dtype once.
    """
    value = f64(value)
    tensor = None if np.all(value == 1.0) else torch.as_tensor(value, dtype=torch.float64)
    module.register_buffer(name, tensor)


def bias_buffer(module: nn.Module, name: str, value: np.ndarray) -> None:
    """Register ``value`` as a buffer, or ``None`` when it is exactly 0 everywhere."""
    value = f64(value)
    tensor = None if np.all(value == 0.0) else torch.as_tensor(value, dtype=torch.float64)
    module.register_buffer(name, tensor)


def affine(x: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """``x * scale + bias`` with either part skipped when absent."""
    if scale is not None:
        x = x * scale
    if bias is not None:
        x = x + bias
    return x
