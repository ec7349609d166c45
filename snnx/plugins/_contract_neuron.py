"""Shared plumbing for neurons that wrap a framework's own neuron class (Norse, SpikingJelly).

Each wrapper folds the snnx contract (``specs/semantics.md`` §4) into its framework's discretisation.
What they share lives here: reading a NIR neuron's parameters in float64, keeping the values seen at
lowering time so an untrained model raises back to *exactly* the graph it came from, and the
``v_init`` / ``i_init`` state buffers. Imports torch; the plugin modules import this lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nir
import numpy as np
import torch

from snnx.errors import UnsupportedNodeError
from snnx.ir.semantics import i_init_of, reset_of, v_init_of
from snnx.torch.graph import TorchNeuron

SPIKING = (nir.IF, nir.LIF, nir.CubaLIF)


def f64(value: Any) -> np.ndarray:
    """A NIR parameter as a float64 array (``None`` counts as 0, NIR's default ``v_reset``)."""
    return np.zeros(()) if value is None else np.asarray(value, dtype=np.float64)


def is_uniform(value: Any) -> bool:
    """Whether every element of a NIR parameter has the same value."""
    arr = f64(value)
    return arr.size > 0 and bool(np.all(arr == arr.flat[0]))


def neuron_class(
    backend: str, neurons: Mapping[type, type[ContractNeuron]], name: str, node: nir.NIRNode
) -> type[ContractNeuron]:
    """The backend's wrapper class for ``node`` (by NIR type); :class:`UnsupportedNodeError` if it has none."""
    cls = neurons.get(type(node))
    if cls is None:
        msg = f"Backend {backend!r} has no neuron for node {name!r} ({type(node).__name__})"
        raise UnsupportedNodeError(msg)
    return cls


def _unchanged(now: np.ndarray, folded: np.ndarray, dtype: torch.dtype) -> bool:
    """Whether ``now`` (a tensor of ``dtype``, as float64) is ``folded`` cast to ``dtype``."""
    cast = torch.as_tensor(folded, dtype=torch.float64).to(dtype).double().numpy()
    return now.shape == cast.shape and bool(np.array_equal(now, cast))


class ContractNeuron(TorchNeuron):
    """Base of the Norse and SpikingJelly neuron wrappers.

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
        self.reset_mode = reset_of(node) if isinstance(node, SPIKING) else None
        # The float64 values the node came with, and the tensors they were folded into:
        # an untrained parameter raises back to its original float64 value, not a rounded one.
        self._original: dict[str, np.ndarray] = {}
        self._folded: dict[str, np.ndarray] = {}
        self.register_buffer("v_init", torch.as_tensor(v_init_of(node), dtype=torch.float64))
        self.remember("v_init", v_init_of(node), self.v_init)
        if isinstance(node, (nir.CubaLI, nir.CubaLIF)):
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

    def recover(self, key: str, current: torch.Tensor, unfold: Any = None) -> np.ndarray:
        """The NIR value of parameter ``key``, given its current folded tensor.

        Unchanged since lowering: the original float64 value. Changed (trained): ``unfold`` of the
        current value in float64 (the value itself when ``unfold`` is ``None``), reshaped like the original.
        """
        now = current.detach().cpu().double().numpy()
        original = self._original[key]
        if _unchanged(now, self._folded[key], current.dtype):
            return original.copy()
        value = np.asarray(now if unfold is None else unfold(now), dtype=np.float64)
        return value.reshape(original.shape) if value.size == original.size else value

    def recover_scale(self, key: str, current: torch.Tensor | None) -> np.ndarray:
        """:meth:`recover` for a scale registered by :meth:`scale_parameter` (``None`` = all ones)."""
        if current is None:
            return self._original[key].copy()
        return self.recover(key, current)

    def contract_metadata(self) -> dict[str, Any]:
        """``metadata["snnx"]`` for :meth:`to_nir`: reset mode and initial state."""
        meta: dict[str, Any] = {}
        if self.reset_mode is not None:
            meta["reset"] = self.reset_mode
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
        return f"node={self.node_name!r}, type={self.nir_type}, dt={self.dt!r}{reset}"


def scale_buffer(module: torch.nn.Module, name: str, value: np.ndarray) -> None:
    """Register ``value`` as a buffer, or ``None`` when it is exactly 1 everywhere.

    Multiplying by 1.0 is exact, but skipping it keeps the lowered model as lean as a hand-written one.
    Buffers are float64; :func:`snnx.torch.graph.build_graph_module` casts the module to its dtype once.
    """
    value = f64(value)
    tensor = None if np.all(value == 1.0) else torch.as_tensor(value, dtype=torch.float64)
    module.register_buffer(name, tensor)


def bias_buffer(module: torch.nn.Module, name: str, value: np.ndarray) -> None:
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
