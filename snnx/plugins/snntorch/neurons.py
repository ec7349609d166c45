"""snnTorch neurons that reproduce the snnx contract exactly, from the tables of :mod:`.fold`.

``LIF``/``IF``/``LI``/``I`` nodes become :class:`snntorch.Leaky` with snnTorch's own reset mechanism
(:class:`SnnTorchLeaky`); ``CubaLIF``/``CubaLI`` nodes become :class:`snntorch.Synaptic` whose reset
this wrapper applies (:class:`SnnTorchSynaptic`), because Synaptic's own "zero" reset also drops the
input of the step after a spike (see ``specs/backends/snntorch.md``). A signed node (contract version
2) runs its neuron without reset and fires through :func:`snnx.torch.signed.signed_step`. Each neuron receives its table
already folded: :func:`neuron_factory` folds every node exactly once.

Imports torch and snnTorch; :mod:`snnx.plugins.snntorch.plugin` imports this module lazily.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import nir
import numpy as np
import torch
from torch import Tensor

from snnx.errors import SnnxError
from snnx.ir.nodes import kind_of
from snnx.ir.semantics import i_init_of, reset_of, set_node_contract, signed_of, v_init_of
from snnx.plugins.snntorch.fold import LeakyTable, SynapticTable, fold
from snnx.torch.graph import as_tensor
from snnx.torch.neuron import TorchNeuron, affine, f64, is_uniform
from snnx.torch.signed import SignedState, signed_step, zeros_count


class Surrogate:
    """A picklable snnTorch surrogate: ``snntorch.surrogate.<name>(**kwargs)``.

    snnTorch's surrogates are closures, which ``torch.save`` of a whole module cannot pickle; this
    keeps the name and arguments and rebuilds the closure after loading.
    """

    def __init__(self, name: str = "atan", **kwargs: Any) -> None:
        import snntorch.surrogate as surrogate

        if not callable(getattr(surrogate, name, None)):
            msg = f"snntorch.surrogate has no surrogate {name!r}; try 'atan', 'fast_sigmoid' or 'sigmoid'"
            raise SnnxError(msg)
        self.name = name
        self.kwargs = dict(kwargs)
        self._fn: Callable[[Tensor], Tensor] | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if self._fn is None:
            import snntorch.surrogate as surrogate

            self._fn = getattr(surrogate, self.name)(**self.kwargs)
        return self._fn(x)

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": self.kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self.kwargs = state["kwargs"]
        self._fn = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"Surrogate({self.name!r}{', ' if args else ''}{args})"


def make_surrogate(spike_grad: str | Callable[[Tensor], Tensor] | None) -> Callable[[Tensor], Tensor]:
    """The surrogate to give every neuron; checks that its forward pass is the strict ``mem > threshold``."""
    fn = Surrogate("atan") if spike_grad is None else Surrogate(spike_grad) if isinstance(spike_grad, str) else spike_grad
    probe = torch.tensor([-1e-3, 0.0, 1e-3])
    got = fn(probe).detach().float()
    if not torch.equal(got, torch.tensor([0.0, 0.0, 1.0])):
        msg = (
            f"spike_grad {fn!r} gives {got.tolist()} for mem - threshold = [-1e-3, 0, 1e-3]; the contract "
            "spikes only when mem > threshold (strict), so use a surrogate whose forward pass is (x > 0)"
        )
        raise SnnxError(msg)
    return fn


def _t(value: np.ndarray) -> Tensor:
    # float64 here; build_graph_module casts the finished module to the requested dtype once.
    # A parameter that is the same for every neuron becomes a scalar, as in a hand-written snnTorch
    # model: per-step broadcasting against a full (C, H, W) tensor is measurably slower.
    value = f64(value)
    if is_uniform(value):
        value = value.flat[0]
    return as_tensor(value, torch.float64)


def _unless(value: np.ndarray, neutral: float) -> Tensor | None:
    # None where the folded map is the identity (scale 1, bias 0): the step skips that operation.
    return None if np.all(value == neutral) else _t(value)


def _untrack(neuron: torch.nn.Module) -> None:
    # snnTorch keeps every neuron ever built in a class-level list for its init_hidden helpers, which
    # these wrappers do not use (state is passed explicitly); dropping ours lets lowered models be freed.
    import snntorch

    instances = snntorch.SpikingNeuron.instances
    for i in range(len(instances) - 1, -1, -1):
        if instances[i] is neuron:
            del instances[i]


def _forget(neuron: torch.nn.Module) -> None:
    # snnTorch also stores the last state on the module; the wrappers pass state explicitly, and a
    # stored non-leaf tensor would make copy.deepcopy(model) fail after a backward pass.
    for attr in ("mem", "syn"):
        if isinstance(getattr(neuron, attr, None), Tensor):
            setattr(neuron, attr, torch.zeros(0))


def _contract_node(node: nir.NIRNode) -> nir.NIRNode:
    out = copy.deepcopy(node)
    kind = kind_of(node)
    kwargs: dict[str, Any] = {"v_init": v_init_of(node)}
    if kind.spiking:
        kwargs["reset"] = reset_of(node)
        kwargs["signed"] = signed_of(node) or None
    if kind.cuba:
        kwargs["i_init"] = i_init_of(node)
    return set_node_contract(out, **kwargs)


class _SnnTorchNeuron(TorchNeuron):
    """What both wrappers share: the node (with its contract) they raise back to, unchanged by training."""

    def __init__(self, name: str, node: nir.NIRNode, dt: float) -> None:
        super().__init__()
        self.node_name = name
        self.dt = float(dt)
        self.node = _contract_node(node)

    def to_nir(self) -> nir.NIRNode:
        return copy.deepcopy(self.node)

    def extra_repr(self) -> str:
        signed = ", signed" if signed_of(self.node) else ""
        return f"node={self.node_name!r} ({type(self.node).__name__}), dt={self.dt:g}{signed}"


class SnnTorchLeaky(_SnnTorchNeuron):
    """A LIF, IF, LI or I node as :class:`snntorch.Leaky` (``reset_delay=True``, snnTorch's default).

    :param table: the node's :func:`~snnx.plugins.snntorch.fold.leaky_table` at ``dt``.
    :ivar neuron: the snnTorch ``Leaky`` doing the work (its ``beta``/``threshold`` are the folded ones).
    Neuron parameters are fixed buffers; the trainable parameters are the surrounding layers' weights.

    A signed node (``table.signed``) runs ``Leaky`` without reset as its voltage update and applies
    :func:`snnx.torch.signed.signed_step` with ``Leaky``'s own surrogate (reset detached, as snnTorch's).
    """

    def __init__(
        self, name: str, node: nir.NIRNode, dt: float, table: LeakyTable, spike_grad: Callable[[Tensor], Tensor]
    ) -> None:
        import snntorch

        super().__init__(name, node, dt)
        self.spiking = table.spiking
        self.signed = table.signed
        self.neuron = snntorch.Leaky(
            beta=_t(table.beta),
            threshold=_t(table.threshold),
            spike_grad=spike_grad,
            reset_mechanism=table.mechanism,
            reset_delay=True,
        )
        _untrack(self.neuron)
        # Skip the folded affine map where it is the identity: r = tau/dt graphs (NIR paper, snnTorch
        # exports) then cost exactly what a hand-written snnTorch model does.
        self.register_buffer("scale", _unless(table.scale, 1.0))
        self.register_buffer("bias", _unless(table.bias, 0.0))
        self.register_buffer("first", _unless(table.first, 0.0))

    def init_state(self, x: Tensor) -> tuple[Tensor, bool] | SignedState:
        state = torch.zeros_like(x), True
        return SignedState(state, zeros_count(x)) if self.signed else state

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        mem, at_start = state.inner if self.signed else state
        drive = affine(x, self.scale, self.bias)
        if at_start and self.first is not None:
            drive = drive + self.first
        spk, mem = self.neuron(drive, mem)
        _forget(self.neuron)
        if self.signed:
            s, mem, n = signed_step(mem, self.neuron.threshold, state.n, self.neuron.spike_grad)
            return s.to(x.dtype), SignedState((mem, False), n)
        return (spk.to(x.dtype) if self.spiking else mem), (mem, False)

    def forward(self, x: Tensor) -> Tensor:
        if self.signed:  # the net count is one more state: the generic step loop carries it
            return super().forward(x)
        mem: Tensor | None = None
        outputs = []
        # Per step, as a hand-written loop: the input scale/bias on one (batch, *shape) slice stays in
        # cache (on the whole sequence it was ~5% slower on a conv SNN), and unbind rather than x[t],
        # whose backward would fill T full-size zero gradients. Same arithmetic as :meth:`step`.
        for t, x_t in enumerate(x.unbind(0)):
            drive = affine(x_t, self.scale, self.bias)
            if t == 0 and self.first is not None:
                drive = drive + self.first
            if mem is None:
                mem = torch.zeros_like(drive)
            spk, mem = self.neuron(drive, mem)
            outputs.append(spk if self.spiking else mem)
        _forget(self.neuron)
        return torch.stack(outputs).to(x.dtype)


class SnnTorchSynaptic(_SnnTorchNeuron):
    """A CubaLIF or CubaLI node as :class:`snntorch.Synaptic` with ``reset_mechanism="none"``.

    This wrapper applies the contract's reset to the membrane it passes back in: snnTorch's own
    "zero" reset discards the whole membrane update of the step after a spike, input included,
    which is not the contract's ``v = v_reset``. The reset signal is detached, as in snnTorch.
    A signed node applies :func:`snnx.torch.signed.signed_step` instead (with ``Synaptic``'s surrogate).

    :param table: the node's :func:`~snnx.plugins.snntorch.fold.synaptic_table` at ``dt``.
    """

    def __init__(
        self, name: str, node: nir.NIRNode, dt: float, table: SynapticTable, spike_grad: Callable[[Tensor], Tensor]
    ) -> None:
        import snntorch

        super().__init__(name, node, dt)
        self.reset = table.reset
        self.signed = table.signed
        self.neuron = snntorch.Synaptic(
            alpha=_t(table.alpha),
            beta=_t(table.beta),
            threshold=_t(table.threshold),
            spike_grad=spike_grad,
            reset_mechanism="none",
        )
        _untrack(self.neuron)
        self.register_buffer("scale", _t(table.scale))
        self.register_buffer("bias", _unless(table.bias, 0.0))
        self.register_buffer("syn_init", _t(table.syn_init))
        self.register_buffer("v_init", _t(table.v_init))
        self.register_buffer("v_reset", _t(table.v_reset))

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor] | SignedState:
        zeros = torch.zeros_like(x)
        state = zeros + self.syn_init, zeros + self.v_init
        return SignedState(state, zeros_count(x)) if self.signed else state

    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        syn, v = state.inner if self.signed else state
        drive = affine(x, self.scale, self.bias)
        spk, syn, mem = self.neuron(drive, syn, v)
        _forget(self.neuron)
        if self.reset is None:
            return mem, (syn, mem)
        if self.signed:
            s, v, n = signed_step(mem, self.neuron.threshold, state.n, self.neuron.spike_grad)
            return s.to(x.dtype), SignedState((syn, v), n)
        s = spk.detach().to(mem.dtype)
        if self.reset == "subtract":
            v = mem - s * self.neuron.threshold
        else:
            v = mem * (1 - s) + s * self.v_reset
        return spk.to(x.dtype), (syn, v)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reset={self.reset!r}"


def clear_snntorch_state(module: torch.nn.Module) -> None:
    """Drop the last batch's state that snnTorch neurons keep as buffers (so saved files stay small)."""
    import snntorch

    for sub in module.modules():
        if isinstance(sub, snntorch.SpikingNeuron):
            _forget(sub)
            if isinstance(getattr(sub, "reset", None), Tensor):
                sub.reset = torch.zeros(0)


def neuron_factory(spike_grad: Callable[[Tensor], Tensor]) -> Callable[[str, nir.NIRNode, float], TorchNeuron]:
    """A ``factory(name, node, dt)`` for :func:`snnx.torch.graph.build_graph_module`: folds each neuron once.

    :param spike_grad: the surrogate every neuron gets (see :func:`make_surrogate`).
    """

    def make(name: str, node: nir.NIRNode, dt: float) -> TorchNeuron:
        table = fold(name, node, dt)
        if isinstance(table, SynapticTable):
            return SnnTorchSynaptic(name, node, dt, table, spike_grad)
        return SnnTorchLeaky(name, node, dt, table, spike_grad)

    return make
