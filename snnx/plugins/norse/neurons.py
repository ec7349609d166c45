"""Norse neurons folded into the snnx contract. The derivation is in ``specs/backends/norse.md``.

Every class wraps Norse's own cell (``LIFBoxCell``, ``IAFCell``, ``LIBoxCell``, ``LIFCell``,
``LICell``) with its own parameter tuple and ``dt``, so the user trains with Norse's surrogate
gradients. What the wrapper adds is an input scale (``r``, ``dt·r``, ``dt/τ_syn·w_in·r``), the
contract's initial state (Norse starts at ``v_leak``), and, where Norse has no subtract reset (IAF,
LIF with current), Norse's own ``threshold`` + ``reset_subtract`` functions applied to the cell's
subthreshold update. A signed node (contract version 2) runs the same subthreshold update and fires
through :func:`snnx.torch.signed.signed_step` with Norse's ``threshold``. The numpy side of the folds
is :mod:`snnx.plugins.norse.fold`.

Imports torch and Norse; :mod:`snnx.plugins.norse.plugin` imports this module lazily.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, NamedTuple

import nir
import numpy as np
import torch
from norse.torch import (
    IAFCell,
    IAFParameters,
    LIBoxCell,
    LIBoxParameters,
    LICell,
    LIFBoxCell,
    LIFBoxParameters,
    LIFCell,
    LIFParameters,
    LIParameters,
)
from norse.torch.functional.iaf import IAFFeedForwardState
from norse.torch.functional.leaky_integrator import LIState, li_feed_forward_step
from norse.torch.functional.leaky_integrator_box import LIBoxState, li_box_feed_forward_step
from norse.torch.functional.lif import LIFFeedForwardState
from norse.torch.functional.lif_box import LIFBoxFeedForwardState
from norse.torch.functional.reset import reset_subtract, reset_value
from norse.torch.functional.threshold import threshold

from snnx.plugins.norse.fold import DEFAULT_ALPHA, DEFAULT_METHOD, inverse
from snnx.plugins.norse.fold import rate as rate64
from snnx.torch.neuron import ContractNeuron, affine, f64, neuron_class
from snnx.torch.signed import SignedState, signed_step, zeros_count


def rate(dt: float, tau: np.ndarray) -> torch.Tensor:
    """:func:`snnx.plugins.norse.fold.rate` as a float64 tensor (the module is cast to its dtype later)."""
    return torch.as_tensor(rate64(dt, tau), dtype=torch.float64)


#: Norse's parameter tuples by name, for unpickling (see :meth:`NorseNeuron.__getstate__`).
PARAMETER_CLASSES = {
    cls.__name__: cls
    for cls in (LIFBoxParameters, IAFParameters, LIBoxParameters, LIFParameters, LIParameters)
}


class _PortableParams(NamedTuple):
    kind: str
    values: tuple


class NorseNeuron(ContractNeuron):
    """Common part: keeps Norse's parameter tuple ``self.cell.p`` on the module's device and dtype."""

    cell: torch.nn.Module

    def _apply(self, fn: Any, recurse: bool = True) -> NorseNeuron:  # type: ignore[override]
        super()._apply(fn, recurse)
        # Norse keeps its parameters in a NamedTuple, which ``.to()``/``.double()`` do not reach.
        cell = getattr(self, "cell", None)
        if cell is not None:
            p = cell.p
            cell.p = type(p)(*(fn(v) if isinstance(v, torch.Tensor) else v for v in p))
        return self

    def __getstate__(self) -> dict[str, Any]:
        # Norse builds its parameter NamedTuples through a metaclass that files them under
        # norse.torch.utils.pytree, where pickle cannot find them; store them as (class name, values).
        state = self.__dict__.copy()
        cell = copy.copy(state["_modules"]["cell"])
        cell.p = _PortableParams(type(cell.p).__name__, tuple(cell.p))
        cell.state_fallback = cell.initial_state  # bound to the original cell (and its tuple) otherwise
        state["_modules"] = {**state["_modules"], "cell": cell}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        cell = self._modules["cell"]
        if isinstance(cell.p, _PortableParams):
            cell.p = PARAMETER_CLASSES[cell.p.kind](*cell.p.values)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The cell's input for the node's input ``x`` (the scale of the table in the module doc)."""
        return affine(x, self.in_scale, None)

    #: Whether the Norse cell has a subtract reset of its own; where not (IAF, the LIF with current), reset
    #: "subtract" runs the cell's subthreshold update (:meth:`_charge`), Norse's ``threshold`` and
    #: Norse's ``reset_subtract``.
    cell_subtracts: ClassVar[bool] = True

    def _advance(self, u: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One Norse step on the already-scaled input ``u``."""
        if self.reset_mode != "subtract" or self.cell_subtracts:
            return self.cell(u, state)
        p = self.cell.p
        v, state = self._charge(u, state)
        z = threshold(v - p.v_th, p.method, p.alpha)
        return z, state._replace(v=reset_subtract(z, v, p.v_reset, p.v_th))

    def _charge(self, u: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """A spiking cell's subthreshold update on ``u``: the membrane ``v`` and the state without reset.

        Only signed nodes call it (:meth:`_signed_advance`); the spiking classes implement it.
        """
        msg = f"{type(self).__name__} has no signed variant"
        raise NotImplementedError(msg)

    def _signed_advance(self, u: torch.Tensor, state: SignedState) -> tuple[torch.Tensor, SignedState]:
        """Norse's subthreshold update, then the signed spike and reset with Norse's own ``threshold``
        (the reset is not detached, as in Norse's ``reset_subtract``)."""
        p = self.cell.p
        v, inner = self._charge(u, state.inner)
        s, v, n = signed_step(v, p.v_th, state.n, lambda x: threshold(x, p.method, p.alpha), detach_reset=False)
        return s, SignedState(inner._replace(v=v), n)

    def init_state(self, x: torch.Tensor) -> Any:
        state = self._initial_state(x)
        return SignedState(state, zeros_count(x)) if self.signed else state

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        # TorchNeuron.forward loops this: the input scale per (batch, *shape) slice stays in cache.
        if self.signed:
            return self._signed_advance(self._input(x), state)
        return self._advance(self._input(x), state)


class NorseLIF(NorseNeuron):
    """NIR ``LIF`` → ``norse.torch.LIFBoxCell`` (both reset modes through ``reset_method``).

    Norse: ``v ← v + dt·τ_inv·(u + v_leak − v)``, spike ``v − v_th > 0``, then reset.
    Contract: ``v ← v + dt/τ·(v_leak − v + r·x)`` → ``u = r·x``, ``τ_inv = 1/τ``.
    """

    def __init__(self, name: str, node: nir.LIF, dt: float, method: str = DEFAULT_METHOD,
                 alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__(name, node, dt)
        self.scale_parameter("in_scale", "r", node.r)
        p = LIFBoxParameters(
            tau_mem_inv=rate(dt, node.tau),
            v_leak=torch.as_tensor(f64(node.v_leak), dtype=torch.float64),
            v_th=torch.as_tensor(f64(node.v_threshold), dtype=torch.float64),
            v_reset=torch.as_tensor(f64(node.v_reset), dtype=torch.float64),
            method=method,
            alpha=torch.as_tensor(alpha),
            reset_method=reset_subtract if self.reset_mode == "subtract" else reset_value,
        )
        self.cell = LIFBoxCell(p, dt=dt)
        self.remember("tau", node.tau, p.tau_mem_inv)
        self.remember("v_leak", node.v_leak, p.v_leak)
        self.remember("v_threshold", node.v_threshold, p.v_th)
        self.remember("v_reset", node.v_reset, p.v_reset)

    def _initial_state(self, x: torch.Tensor) -> LIFBoxFeedForwardState:
        return LIFBoxFeedForwardState(v=self.initial("v_init", x))

    def _charge(self, u: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        # LIFBoxCell's own step fires and resets; its subthreshold part is Norse's LI box step.
        p = self.cell.p
        li = LIBoxParameters(tau_mem_inv=p.tau_mem_inv, v_leak=p.v_leak)
        v, _ = li_box_feed_forward_step(u, LIBoxState(v=state.v), li, self.dt)
        return v, state

    def to_nir(self) -> nir.LIF:
        p = self.cell.p
        return nir.LIF(
            tau=self.recover("tau", p.tau_mem_inv, inverse),
            r=self.recover_scale("r", self.in_scale),
            v_leak=self.recover("v_leak", p.v_leak),
            v_threshold=self.recover("v_threshold", p.v_th),
            v_reset=self.recover("v_reset", p.v_reset),
            metadata=self.contract_metadata(),
        )


class NorseIF(NorseNeuron):
    """NIR ``IF`` → ``norse.torch.IAFCell``.

    Norse: ``v ← v + u``, spike ``v − v_th > 0``, value reset. Contract: ``v ← v + dt·r·x`` → ``u = dt·r·x``.
    IAF has no subtract reset: for ``reset="subtract"`` the wrapper applies the same ``v + u`` update,
    Norse's ``threshold`` and Norse's ``reset_subtract``.
    """

    cell_subtracts = False

    def __init__(self, name: str, node: nir.IF, dt: float, method: str = DEFAULT_METHOD,
                 alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__(name, node, dt)
        self.register_buffer("in_scale", torch.as_tensor(dt * f64(node.r), dtype=torch.float64))
        self.remember("r", node.r, self.in_scale)
        p = IAFParameters(
            v_th=torch.as_tensor(f64(node.v_threshold), dtype=torch.float64),
            v_reset=torch.as_tensor(f64(node.v_reset), dtype=torch.float64),
            method=method,
            alpha=torch.as_tensor(alpha),
        )
        self.cell = IAFCell(p, dt=dt)
        self.remember("v_threshold", node.v_threshold, p.v_th)
        self.remember("v_reset", node.v_reset, p.v_reset)

    def _initial_state(self, x: torch.Tensor) -> IAFFeedForwardState:
        return IAFFeedForwardState(v=self.initial("v_init", x))

    def _charge(self, u: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return state.v + u, state

    def to_nir(self) -> nir.IF:
        p = self.cell.p
        return nir.IF(
            r=self.recover("r", self.in_scale, lambda v: v / self.dt),
            v_threshold=self.recover("v_threshold", p.v_th),
            v_reset=self.recover("v_reset", p.v_reset),
            metadata=self.contract_metadata(),
        )


class NorseLI(NorseNeuron):
    """NIR ``LI`` → ``norse.torch.LIBoxCell``: ``v ← v + dt·τ_inv·((v_leak − v) + u)``, ``u = r·x``."""

    def __init__(self, name: str, node: nir.LI, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self.scale_parameter("in_scale", "r", node.r)
        p = LIBoxParameters(
            tau_mem_inv=rate(dt, node.tau),
            v_leak=torch.as_tensor(f64(node.v_leak), dtype=torch.float64),
        )
        self.cell = LIBoxCell(p, dt=dt)
        self.remember("tau", node.tau, p.tau_mem_inv)
        self.remember("v_leak", node.v_leak, p.v_leak)

    def _initial_state(self, x: torch.Tensor) -> LIBoxState:
        return LIBoxState(v=self.initial("v_init", x))

    def to_nir(self) -> nir.LI:
        p = self.cell.p
        return nir.LI(
            tau=self.recover("tau", p.tau_mem_inv, inverse),
            r=self.recover_scale("r", self.in_scale),
            v_leak=self.recover("v_leak", p.v_leak),
            metadata=self.contract_metadata(),
        )


class NorseI(ContractNeuron):
    """NIR ``I`` (a pure integrator, ``v ← v + dt·r·x``). Norse has no non-spiking integrator cell, so
    this is plain torch: a running sum of ``dt·r·x`` from ``v_init``."""

    def __init__(self, name: str, node: nir.I, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self.register_buffer("in_scale", torch.as_tensor(dt * f64(node.r), dtype=torch.float64))
        self.remember("r", node.r, self.in_scale)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.initial("v_init", x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = state + x * self.in_scale
        return v, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same additions in the same order as ``step``: cumsum is a sequential scan on CPU.
        u = x * self.in_scale
        u = torch.cat([self.initial("v_init", x[0]).unsqueeze(0), u])
        return torch.cumsum(u, dim=0)[1:]

    def to_nir(self) -> nir.I:
        return nir.I(r=self.recover("r", self.in_scale, lambda v: v / self.dt),
                     metadata=self.contract_metadata())


class _NorseCuba(NorseNeuron):
    """Shared folding of ``CubaLI``/``CubaLIF`` onto Norse's current-jump cells.

    Norse (``li_feed_forward_step``/``lif_feed_forward_step``)::

        j ← i + u;  v ← v + dt·τm_inv·((v_leak − v) + j);  i ← j − dt·τs_inv·j

    Contract: ``I ← I + a_s·(−I + w_in·x)``, ``v ← v + a_m·(v_leak − v + r·I)``. With ``j = r·I`` (the
    voltage sees the *new* current in both) this holds for ``u = a_s·w_in·r·x`` and a Norse state
    ``i = (1 − a_s)·r·I`` (the decayed current), so the initial Norse current is ``(1 − a_s)·r·i_init``.
    """

    def _setup(self, node: nir.NIRNode, dt: float) -> None:
        a_s = dt / f64(node.tau_syn)
        self.register_buffer(
            "in_scale", torch.as_tensor(a_s * f64(node.w_in) * f64(node.r), dtype=torch.float64)
        )
        self.remember("w_in", node.w_in, self.in_scale)
        self._r64 = f64(node.r)
        self._a_s64 = a_s
        self.register_buffer(
            "i_state_init", torch.as_tensor((1.0 - a_s) * f64(node.r) * self._original["i_init"], dtype=torch.float64)
        )

    def _w_in(self) -> np.ndarray:
        return self.recover("w_in", self.in_scale, lambda v: v / (self._a_s64 * self._r64))


class NorseCubaLIF(_NorseCuba):
    """NIR ``CubaLIF`` → ``norse.torch.LIFCell`` (reset "value"). For reset "subtract", Norse's LIF
    hard-codes the value reset, so the wrapper runs Norse's ``li_feed_forward_step`` (the identical
    subthreshold update) followed by Norse's ``threshold`` and ``reset_subtract``."""

    cell_subtracts = False

    def __init__(self, name: str, node: nir.CubaLIF, dt: float, method: str = DEFAULT_METHOD,
                 alpha: float = DEFAULT_ALPHA) -> None:
        super().__init__(name, node, dt)
        self._setup(node, dt)
        p = LIFParameters(
            tau_syn_inv=rate(dt, node.tau_syn),
            tau_mem_inv=rate(dt, node.tau_mem),
            v_leak=torch.as_tensor(f64(node.v_leak), dtype=torch.float64),
            v_th=torch.as_tensor(f64(node.v_threshold), dtype=torch.float64),
            v_reset=torch.as_tensor(f64(node.v_reset), dtype=torch.float64),
            method=method,
            alpha=torch.as_tensor(alpha),
        )
        self.cell = LIFCell(p, dt=dt)
        p = self.cell.p
        for key, value, folded in (
            ("tau_syn", node.tau_syn, p.tau_syn_inv), ("tau_mem", node.tau_mem, p.tau_mem_inv),
            ("v_leak", node.v_leak, p.v_leak), ("v_threshold", node.v_threshold, p.v_th),
            ("v_reset", node.v_reset, p.v_reset),
        ):
            self.remember(key, value, folded)

    def _initial_state(self, x: torch.Tensor) -> LIFFeedForwardState:
        return LIFFeedForwardState(v=self.initial("v_init", x), i=self.initial("i_state_init", x))

    def _charge(self, u: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        p = self.cell.p
        li = LIParameters(tau_syn_inv=p.tau_syn_inv, tau_mem_inv=p.tau_mem_inv, v_leak=p.v_leak)
        v, li_state = li_feed_forward_step(u, LIState(v=state.v, i=state.i), li, self.dt)
        return v, LIFFeedForwardState(v=v, i=li_state.i)

    def to_nir(self) -> nir.CubaLIF:
        p = self.cell.p
        return nir.CubaLIF(
            tau_syn=self.recover("tau_syn", p.tau_syn_inv, inverse),
            tau_mem=self.recover("tau_mem", p.tau_mem_inv, inverse),
            r=self._r64.copy(),
            v_leak=self.recover("v_leak", p.v_leak),
            v_threshold=self.recover("v_threshold", p.v_th),
            v_reset=self.recover("v_reset", p.v_reset),
            w_in=self._w_in(),
            metadata=self.contract_metadata(),
        )


class NorseCubaLI(_NorseCuba):
    """NIR ``CubaLI`` → ``norse.torch.LICell``, folded as :class:`_NorseCuba` describes."""

    def __init__(self, name: str, node: nir.CubaLI, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self._setup(node, dt)
        p = LIParameters(
            tau_syn_inv=rate(dt, node.tau_syn),
            tau_mem_inv=rate(dt, node.tau_mem),
            v_leak=torch.as_tensor(f64(node.v_leak), dtype=torch.float64),
        )
        self.cell = LICell(p, dt=dt)
        self.remember("tau_syn", node.tau_syn, p.tau_syn_inv)
        self.remember("tau_mem", node.tau_mem, p.tau_mem_inv)
        self.remember("v_leak", node.v_leak, p.v_leak)

    def _initial_state(self, x: torch.Tensor) -> LIState:
        return LIState(v=self.initial("v_init", x), i=self.initial("i_state_init", x))

    def to_nir(self) -> nir.CubaLI:
        p = self.cell.p
        return nir.CubaLI(
            tau_syn=self.recover("tau_syn", p.tau_syn_inv, inverse),
            tau_mem=self.recover("tau_mem", p.tau_mem_inv, inverse),
            r=self._r64.copy(),
            v_leak=self.recover("v_leak", p.v_leak),
            w_in=self._w_in(),
            metadata=self.contract_metadata(),
        )


#: The wrapper of every neuron kind (:data:`snnx.ir.nodes.KINDS` names).
NEURONS: dict[str, type[ContractNeuron]] = {
    "LIF": NorseLIF,
    "IF": NorseIF,
    "LI": NorseLI,
    "I": NorseI,
    "CubaLIF": NorseCubaLIF,
    "CubaLI": NorseCubaLI,
}


def neuron_factory(method: str = DEFAULT_METHOD, alpha: float = DEFAULT_ALPHA):
    """A ``neuron_factory(name, node, dt)`` for :func:`snnx.torch.graph.build_graph_module`."""

    def make(name: str, node: nir.NIRNode, dt: float) -> ContractNeuron:
        return neuron_class("norse", NEURONS, name, node)(name, node, dt, method=method, alpha=alpha)

    return make
