"""SpikingJelly neurons folded into the snnx contract. Derivation: ``specs/backends/spikingjelly.md``.

Spiking nodes run SpikingJelly's own ``IFNode``/``LIFNode`` in multi-step mode (``step_mode="m"``);
non-spiking ones and the synaptic current of Cuba nodes use ``NonSpikingIFNode``/``NonSpikingLIFNode``'s
charge equations from an explicit initial state. Three folds make them equal the contract:

- SpikingJelly fires on ``V − V_th ≥ 0``; the contract on ``v > v_th``. :class:`StrictSpike` wraps the
  user's SpikingJelly surrogate and removes the spike where ``V − V_th == 0`` exactly (the forward is
  then the strict step; the surrogate gradient is untouched). Exact in IEEE arithmetic: with gradual
  underflow ``a − b == 0`` iff ``a == b``.
- SpikingJelly's LIF leaks towards ``V_reset`` (hard reset) or 0 (soft reset), NIR's towards
  ``v_leak``: the difference enters as an input bias ``v_leak − V_reset``.
- ``τ_SJ = τ/dt`` (SpikingJelly's step is 1), and the input carries ``r`` (``dt·r`` for IF/I).

Signed spikes (contract version 2) charge through the non-spiking nodes and fire through
:func:`snnx.torch.signed.signed_step` (see :class:`_SJSpiking`). What cannot be folded is refused by
:mod:`snnx.plugins.spikingjelly.fold`. Imports torch and
SpikingJelly; :mod:`snnx.plugins.spikingjelly.plugin` imports this module lazily.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import nir
import numpy as np
import torch
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based import surrogate as sj_surrogate

from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.plugins.spikingjelly.fold import HEAVISIDE_SURROGATES, node_refusals
from snnx.plugins.spikingjelly.fold import NAME as BACKEND
from snnx.torch.neuron import ContractNeuron, affine, bias_buffer, f64, is_uniform, neuron_class
from snnx.torch.signed import SignedState, signed_step, zeros_count


def check_surrogate(surrogate: Any) -> None:
    """Refuse a surrogate whose forward pass is not SpikingJelly's step function."""
    if surrogate is None:
        return
    kind = type(surrogate).__name__
    ok = (
        isinstance(surrogate, sj_surrogate.SurrogateFunctionBase)
        and kind in HEAVISIDE_SURROGATES
        and getattr(surrogate, "spiking", False)
    )
    if not ok:
        msg = (
            f"Backend {BACKEND!r}: surrogate {surrogate!r} is not a SpikingJelly surrogate in spiking mode "
            f"with a step-function forward pass; use one of {', '.join(sorted(HEAVISIDE_SURROGATES))}"
        )
        raise SnnxError(msg)


class _StrictStep(torch.autograd.Function):
    """Forward ``x > 0``; backward the SpikingJelly surrogate's own gradient formula."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, inner: torch.nn.Module) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.inner = inner
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        inner = ctx.inner
        return type(inner).backward(grad, x, **inner._sg_params), None


class StrictSpike(torch.nn.Module):
    """A SpikingJelly surrogate whose forward is ``x > 0`` instead of ``x >= 0``.

    :param inner: a SpikingJelly surrogate (default ``surrogate.Sigmoid()``) whose gradient is kept.
    """

    def __init__(self, inner: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.inner = inner if inner is not None else sj_surrogate.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _has_static_backward(self.inner):
            # One autograd node per step, as cheap as SpikingJelly's own kernel.
            return _StrictStep.apply(x, self.inner)
        # Surrogates without a static gradient formula: inner(x) is 1 at x == 0, the mask has no gradient.
        return self.inner(x) - (x == 0).to(x.dtype)


def _has_static_backward(inner: torch.nn.Module) -> bool:
    try:
        attr = inspect.getattr_static(type(inner), "backward")
    except AttributeError:
        return False
    return isinstance(attr, staticmethod)


def _sj_reset(reset_mode: str | None) -> float | None:
    # SpikingJelly's soft reset (v_reset=None) is the contract's "subtract"; its leak target is then 0.
    return None if reset_mode == "subtract" else 0.0


class _SJNeuron(ContractNeuron):
    """Sets SpikingJelly node settings from NIR parameters and reads them back for :meth:`to_nir`.

    SpikingJelly's constructors take Python floats (one value per layer). A uniform NIR parameter
    becomes that float. A per-neuron one becomes a float64 buffer under the same attribute name:
    with the :class:`StrictSpike` surrogate every SpikingJelly step runs its Torch reference formulas
    (``_ops/*/reference.py``), which are elementwise and broadcast a tensor exactly like a float.
    """

    def __init__(self, name: str, node: nir.NIRNode, dt: float) -> None:
        super().__init__(name, node, dt)
        self._settings: dict[str, tuple[str, float]] = {}  # NIR key -> (attribute path, unit)

    def _owner(self, path: str) -> tuple[torch.nn.Module, str]:
        """The module and attribute of a setting: ``"node.tau"`` on ``self.node``, ``"v_threshold"`` on self."""
        owner_name, _, attr = path.rpartition(".")
        return self.get_submodule(owner_name), attr

    def _setting(self, path: str, key: str, values: np.ndarray, original: object, unit: float = 1.0) -> None:
        """Store ``values`` at ``path`` (``"node.v_threshold"``); NIR ``key`` = ``values · unit``."""
        owner, attr = self._owner(path)
        values = f64(values)
        if is_uniform(values):
            setattr(owner, attr, float(values.flat[0]))
        else:
            if hasattr(owner, attr):  # a SpikingJelly node's float setting; a signed node's v_threshold is new
                delattr(owner, attr)
            owner.register_buffer(attr, torch.as_tensor(values, dtype=torch.float64))
        self.remember(key, original, torch.as_tensor(values, dtype=torch.float64))
        self._settings[key] = (path, unit)

    def _nir(self, key: str) -> np.ndarray:
        """The NIR value of ``key`` from the current SpikingJelly setting."""
        path, unit = self._settings[key]
        owner, attr = self._owner(path)
        value = getattr(owner, attr)
        if isinstance(value, torch.Tensor):
            return self.recover(key, value, lambda v: v * unit)
        original = self._original[key]
        if np.all(self._folded[key] == float(value)):
            return original.copy()
        return np.full(original.shape, float(value) * unit)

    def _leak_bias(self, node: nir.NIRNode, target: np.ndarray) -> None:
        """Register ``in_bias = v_leak − target``: SpikingJelly leaks towards ``target``, NIR towards ``v_leak``."""
        self._v_reset_sj = target
        bias = f64(node.v_leak) - target
        bias_buffer(self, "in_bias", bias)
        self.remember("v_leak", node.v_leak, torch.as_tensor(bias, dtype=torch.float64))

    def _v_leak(self) -> np.ndarray:
        """The NIR ``v_leak`` back from ``in_bias`` (see :meth:`_leak_bias`)."""
        if self.in_bias is None:
            return self._original["v_leak"].copy()
        return self.recover("v_leak", self.in_bias, lambda v: v + self._v_reset_sj)


class _SJSpiking(_SJNeuron):
    """Shared multi-step run of an ``IFNode``/``LIFNode`` from the contract's ``v_init``.

    A signed node (contract version 2) cannot run ``IFNode``/``LIFNode``, which only emit 0/1: its
    ``self.node`` is the matching ``NonSpikingIFNode``/``NonSpikingLIFNode`` (the same charge equation
    with a soft reset's leak target 0), stepped from an explicit state, and
    :func:`snnx.torch.signed.signed_step` fires with the :class:`StrictSpike` surrogate ``self.spike``
    against ``self.v_threshold`` (reset not detached: SpikingJelly's ``detach_reset=False`` default).
    """

    node: sj_neuron.BaseNode

    def _spiking_node(self, node: nir.NIRNode, node_cls: type, surrogate: torch.nn.Module | None,
                      **kwargs: Any) -> None:
        """Build ``self.node`` (multi-step, strict spikes) and set its threshold and reset from ``node``."""
        if self.signed:  # validation guarantees reset "subtract"
            leaky = node_cls is sj_neuron.LIFNode
            self.node = sj_neuron.NonSpikingLIFNode(tau=kwargs["tau"]) if leaky else sj_neuron.NonSpikingIFNode()
            self.spike = StrictSpike(surrogate)
            self._setting("v_threshold", "v_threshold", node.v_threshold, node.v_threshold)
            self._v_reset64 = f64(node.v_reset)
            return
        self.node = node_cls(
            v_reset=_sj_reset(self.reset_mode), surrogate_function=StrictSpike(surrogate), step_mode="m", **kwargs
        )
        self._setting("node.v_threshold", "v_threshold", node.v_threshold, node.v_threshold)
        if self.reset_mode == "value":
            self._setting("node.v_reset", "v_reset", node.v_reset, node.v_reset)
        else:
            self._v_reset64 = f64(node.v_reset)

    def _leak_target(self, node: nir.NIRNode) -> np.ndarray:
        """Where SpikingJelly's LIFNode leaks to: ``V_reset`` for a hard (value) reset, 0 for a soft one."""
        return f64(node.v_reset) if self.reset_mode == "value" else np.zeros(())

    def _reset_back(self) -> np.ndarray:
        return self._nir("v_reset") if self.reset_mode == "value" else self._v_reset64.copy()

    def _membrane(self, x: torch.Tensor) -> torch.Tensor | SignedState:
        """The membrane's initial state: ``v_init``, with the net spike count when signed."""
        v = self.initial("v_init", x)
        return SignedState(v, zeros_count(x)) if self.signed else v

    def _run_node(self, u: torch.Tensor) -> torch.Tensor:
        if self.signed:  # one more state (the net count): step by step
            state, out = self._membrane(u[0]), []
            for u_t in u.unbind(0):
                spike, state = self._step_node(u_t, state)
                out.append(spike)
            return torch.stack(out)
        node = self.node
        node.reset()
        node.v = self.initial("v_init", u[0])
        try:
            return node(u)
        finally:
            node.reset()  # no state (or autograd graph) outlives the call

    def _step_node(self, u: torch.Tensor, v: Any) -> tuple[torch.Tensor, Any]:
        if self.signed:
            h = _charge_step(self.node, u, v.inner)
            spike, h, n = signed_step(h, self.v_threshold, v.n, self.spike, detach_reset=False)
            return spike, SignedState(h, n)
        (spike,), (v,) = self.node.single_step_functional_forward((u,), (v,))
        return spike, v


class SJIF(_SJSpiking):
    """NIR ``IF`` → ``IFNode``: ``H = V + X``, ``X = dt·r·x``; soft reset (``v_reset=None``) = subtract."""

    def __init__(self, name: str, node: nir.IF, dt: float, surrogate: torch.nn.Module | None = None,
                 **_: Any) -> None:
        super().__init__(name, node, dt)
        self.register_buffer("in_scale", torch.as_tensor(dt * f64(node.r), dtype=torch.float64))
        self.remember("r", node.r, self.in_scale)
        self._spiking_node(node, sj_neuron.IFNode, surrogate)

    def init_state(self, x: torch.Tensor) -> torch.Tensor | SignedState:
        return self._membrane(x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._step_node(x * self.in_scale, state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_node(x * self.in_scale)

    def to_nir(self) -> nir.IF:
        return nir.IF(
            r=self.recover("r", self.in_scale, lambda v: v / self.dt),
            v_threshold=self._nir("v_threshold"),
            v_reset=self._reset_back(),
            metadata=self.contract_metadata(),
        )


class SJLIF(_SJSpiking):
    """NIR ``LIF`` → ``LIFNode(tau=τ/dt, decay_input=True)``.

    SpikingJelly: ``H = V + (X − (V − V_r))/τ_SJ`` (``V_r`` = ``v_reset``, or 0 for soft reset).
    Contract: ``v + dt/τ·(v_leak − v + r·x)``. Equal for ``τ_SJ = τ/dt`` and ``X = r·x + (v_leak − V_r)``.
    """

    def __init__(self, name: str, node: nir.LIF, dt: float, surrogate: torch.nn.Module | None = None,
                 **_: Any) -> None:
        super().__init__(name, node, dt)
        self.scale_parameter("in_scale", "r", node.r)
        self._leak_bias(node, self._leak_target(node))
        self._spiking_node(node, sj_neuron.LIFNode, surrogate, tau=2.0, decay_input=True)
        self._setting("node.tau", "tau", f64(node.tau) / dt, node.tau, unit=dt)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return affine(x, self.in_scale, self.in_bias)

    def init_state(self, x: torch.Tensor) -> torch.Tensor | SignedState:
        return self._membrane(x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._step_node(self._input(x), state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_node(self._input(x))

    def to_nir(self) -> nir.LIF:
        return nir.LIF(
            tau=self._nir("tau"),
            r=self.recover_scale("r", self.in_scale),
            v_leak=self._v_leak(),
            v_threshold=self._nir("v_threshold"),
            v_reset=self._reset_back(),
            metadata=self.contract_metadata(),
        )


def _charge_step(node: torch.nn.Module, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One ``neuronal_charge`` of a SpikingJelly ``NonSpiking*Node`` from the explicit state ``v``.

    ``NonSpikingBaseNode.forward`` always starts from 0; the contract starts from ``v_init``/``i_init``,
    so the wrappers loop the node's own charge equation with the state set first.
    """
    node.v = v
    node.neuronal_charge(x)
    v = node.v
    del node.v  # the node keeps no state between calls
    return v


def _charge_run(node: torch.nn.Module, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:func:`_charge_step` over a whole ``(T, batch, *shape)`` sequence; returns every step's state."""
    out = []
    for x_t in x.unbind(0):  # unbind, not x[t]: T selects would each fill a full-size zero gradient
        v = _charge_step(node, x_t, v)
        out.append(v)
    return torch.stack(out)


class SJLI(_SJNeuron):
    """NIR ``LI`` → ``NonSpikingLIFNode(tau=τ/dt)``: ``V + (X − V)/τ_SJ`` with ``X = r·x + v_leak``."""

    def __init__(self, name: str, node: nir.LI, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self.scale_parameter("in_scale", "r", node.r)
        self._leak_bias(node, np.zeros(()))
        self.node = sj_neuron.NonSpikingLIFNode()
        self._setting("node.tau", "tau", f64(node.tau) / dt, node.tau, unit=dt)

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.initial("v_init", x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = _charge_step(self.node, affine(x, self.in_scale, self.in_bias), state)
        return v, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _charge_run(self.node, affine(x, self.in_scale, self.in_bias), self.initial("v_init", x[0]))

    def to_nir(self) -> nir.LI:
        return nir.LI(
            tau=self._nir("tau"),
            r=self.recover_scale("r", self.in_scale),
            v_leak=self._v_leak(),
            metadata=self.contract_metadata(),
        )


class SJI(_SJNeuron):
    """NIR ``I`` → ``NonSpikingIFNode``: ``V + X`` with ``X = dt·r·x``."""

    def __init__(self, name: str, node: nir.I, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self.register_buffer("in_scale", torch.as_tensor(dt * f64(node.r), dtype=torch.float64))
        self.remember("r", node.r, self.in_scale)
        self.node = sj_neuron.NonSpikingIFNode()

    def init_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.initial("v_init", x)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = _charge_step(self.node, x * self.in_scale, state)
        return v, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _charge_run(self.node, x * self.in_scale, self.initial("v_init", x[0]))

    def to_nir(self) -> nir.I:
        return nir.I(r=self.recover("r", self.in_scale, lambda v: v / self.dt),
                     metadata=self.contract_metadata())


class _SJCuba(_SJNeuron):
    """The synaptic current of ``CubaLI``/``CubaLIF``: a ``NonSpikingLIFNode(tau=τ_syn/dt)``.

    Its charge ``I + (X − I)/τ_SJ`` with ``X = w_in·x`` is the contract's ``I + dt/τ_syn·(−I + w_in·x)``;
    the membrane then sees the new current through ``r·I + (v_leak − V_r)``.
    """

    def _setup_synapse(self, node: nir.NIRNode, dt: float) -> None:
        self.scale_parameter("w_in", "w_in", node.w_in)
        self.scale_parameter("r", "r", node.r)
        self.synapse = sj_neuron.NonSpikingLIFNode()
        self._setting("synapse.tau", "tau_syn", f64(node.tau_syn) / dt, node.tau_syn, unit=dt)

    def _current(self, x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return _charge_step(self.synapse, affine(x, self.w_in, None), i)

    def _currents(self, x: torch.Tensor) -> torch.Tensor:
        return _charge_run(self.synapse, affine(x, self.w_in, None), self.initial("i_init", x[0]))

    def _cuba_common(self) -> dict[str, np.ndarray]:
        return {
            "tau_syn": self._nir("tau_syn"),
            "r": self.recover_scale("r", self.r),
            "w_in": self.recover_scale("w_in", self.w_in),
        }


class SJCubaLIF(_SJCuba, _SJSpiking):
    """NIR ``CubaLIF`` → ``NonSpikingLIFNode`` (current) then ``LIFNode`` (membrane, multi-step)."""

    def __init__(self, name: str, node: nir.CubaLIF, dt: float, surrogate: torch.nn.Module | None = None,
                 **_: Any) -> None:
        super().__init__(name, node, dt)
        self._setup_synapse(node, dt)
        self._leak_bias(node, self._leak_target(node))
        self._spiking_node(node, sj_neuron.LIFNode, surrogate, tau=2.0, decay_input=True)
        self._setting("node.tau", "tau_mem", f64(node.tau_mem) / dt, node.tau_mem, unit=dt)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.initial("i_init", x), self._membrane(x)

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        i, v = state
        i = self._current(x, i)
        spike, v = self._step_node(affine(i, self.r, self.in_bias), v)
        return spike, (i, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_node(affine(self._currents(x), self.r, self.in_bias))

    def to_nir(self) -> nir.CubaLIF:
        return nir.CubaLIF(
            tau_mem=self._nir("tau_mem"),
            v_leak=self._v_leak(),
            v_threshold=self._nir("v_threshold"),
            v_reset=self._reset_back(),
            metadata=self.contract_metadata(),
            **self._cuba_common(),
        )


class SJCubaLI(_SJCuba):
    """NIR ``CubaLI`` → two ``NonSpikingLIFNode`` charges: current (``τ_syn``), then membrane (``τ_mem``)."""

    def __init__(self, name: str, node: nir.CubaLI, dt: float, **_: Any) -> None:
        super().__init__(name, node, dt)
        self._setup_synapse(node, dt)
        self._leak_bias(node, np.zeros(()))
        self.membrane = sj_neuron.NonSpikingLIFNode()
        self._setting("membrane.tau", "tau_mem", f64(node.tau_mem) / dt, node.tau_mem, unit=dt)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.initial("i_init", x), self.initial("v_init", x)

    def step(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        i, v = state
        i = self._current(x, i)
        v = _charge_step(self.membrane, affine(i, self.r, self.in_bias), v)
        return v, (i, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = affine(self._currents(x), self.r, self.in_bias)
        return _charge_run(self.membrane, u, self.initial("v_init", x[0]))

    def to_nir(self) -> nir.CubaLI:
        return nir.CubaLI(
            tau_mem=self._nir("tau_mem"),
            v_leak=self._v_leak(),
            metadata=self.contract_metadata(),
            **self._cuba_common(),
        )


#: The wrapper of every neuron kind (:data:`snnx.ir.nodes.KINDS` names).
NEURONS: dict[str, type[ContractNeuron]] = {
    "IF": SJIF,
    "LIF": SJLIF,
    "LI": SJLI,
    "I": SJI,
    "CubaLIF": SJCubaLIF,
    "CubaLI": SJCubaLI,
}


def neuron_factory(surrogate: torch.nn.Module | None = None):
    """A ``neuron_factory(name, node, dt)`` for :func:`snnx.torch.graph.build_graph_module`.

    :param surrogate: a SpikingJelly surrogate (``surrogate.ATan()``, ...); default ``Sigmoid()``.
        Each neuron gets its own copy.
    """

    def make(name: str, node: nir.NIRNode, dt: float) -> ContractNeuron:
        cls = neuron_class(BACKEND, NEURONS, name, node)
        reasons = node_refusals(name, node, dt)
        if reasons:
            raise UnsupportedNodeError("; ".join(reasons))
        return cls(name, node, dt, surrogate=copy.deepcopy(surrogate))

    return make

