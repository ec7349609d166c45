"""lava-dl's SLAYER network classes for the ``lava-dl`` backend: the contract's CUBA neuron and the chain.

The model is an ordinary ``torch.nn.Module`` of ``lava.lib.dl.slayer`` CUBA blocks that trains with
SLAYER's surrogate gradient (``slayer.spike.Spike``) on CPU. Its neurons run the contract in floating
point (SLAYER's own CUBA forward works on a 1/4096 integer grid with 12-bit decays, which is Loihi's
arithmetic but not the contract's); the fixed-point version is the ``lava`` backend's job. See
``specs/backends/lava-dl.md``.

Layout: SLAYER puts time last, ``(batch, channels, [height, width,] time)``; the backend's ``run``
converts from and to snnx's time-major ``(T, batch, *shape)`` with :func:`to_slayer_layout` and
:func:`from_slayer_layout`. torch and SLAYER are imported only when a class is first built.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer
from snnx.plugins.loihi.quantise import BIAS_MAX, BIAS_MIN, WEIGHT_MAX

if TYPE_CHECKING:  # pragma: no cover
    import torch


def slayer_module() -> Any:
    """``lava.lib.dl.slayer``, imported patched and quietly."""
    return import_lava("lava.lib.dl.slayer")


@functools.cache  # one class per process, so pickled models find the class they were saved with
def _neuron_class() -> type:
    """SLAYER's CUBA neuron with the contract's floating-point forward (built lazily: imports torch)."""
    import torch

    slayer = slayer_module()
    cuba = slayer.neuron.cuba

    def _state(value: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float64))

    class ContractCubaNeuron(cuba.Neuron):
        """``slayer.neuron.cuba.Neuron`` computing the CUBA update in floating point.

        ``u = (1-du) u + z``; ``v = (1-dv) v + u + v_bias``; ``s = v > threshold`` (strict), then
        ``v = v_reset`` (reset "value") or ``v -= threshold`` (reset "subtract") where ``s``. Decays and
        threshold are kept unrounded (SLAYER's own forward rounds decays to 1/4096, thresholds to
        1/64 and the state to a 1/4096 grid). The backward pass is SLAYER's surrogate spike derivative
        with autograd through the decays. Non-spiking layers (LI, CubaLI, I) output ``v``.
        """

        def __init__(self, layer: CubaLayer, tau_grad: float = 1.0, scale_grad: float = 1.0) -> None:
            super().__init__(
                threshold=layer.threshold if layer.spiking else 1.0,
                current_decay=layer.current_decay, voltage_decay=layer.voltage_decay,
                tau_grad=tau_grad, scale_grad=scale_grad,
            )
            self.spiking = layer.spiking
            self.subtract = layer.reset == "subtract"
            decays = [layer.current_decay, layer.voltage_decay]
            self.register_buffer("contract_decays", _state(decays))
            self.register_buffer("contract_threshold", _state(layer.threshold if layer.spiking else np.inf))
            for key in ("v_bias", "v_reset", "v_init", "u_init"):
                self.register_buffer(key, _state(getattr(layer, key)))

        def dynamics(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002 - SLAYER's name
            if self.shape is None:
                self.shape = input.shape[1:-1]
            dtype = input.dtype
            du, dv = self.contract_decays.to(dtype)
            theta = self.contract_threshold.to(dtype)
            v_bias, v_reset = self.v_bias.to(dtype), self.v_reset.to(dtype)
            u = torch.zeros_like(input[..., 0]) + self.u_init.to(dtype)
            v = torch.zeros_like(input[..., 0]) + self.v_init.to(dtype)
            currents, voltages = [], []
            for t in range(input.shape[-1]):
                u = (1 - du) * u + input[..., t]
                v = (1 - dv) * v + u + v_bias
                currents.append(u)
                voltages.append(v)
                if self.spiking:
                    # The reset is a hard switch; SLAYER's own backward also ignores it.
                    fired = v.detach() > theta
                    v = v - theta * fired if self.subtract else torch.where(fired, v_reset.expand_as(v), v)
            return torch.stack(currents, dim=-1), torch.stack(voltages, dim=-1)

        def spike(self, voltage: torch.Tensor) -> torch.Tensor:
            # Spike.apply fires on `v >= threshold`; the next float above the threshold makes it `v > threshold`.
            theta = self.contract_threshold.to(voltage.dtype)
            strict = torch.nextafter(theta, torch.as_tensor(float("inf"), dtype=voltage.dtype))
            spikes = slayer.spike.Spike.apply(
                voltage, strict, self.tau_rho * cuba.TAU_RHO_MULT, self.scale_rho * cuba.SCALE_RHO_MULT,
                False, torch.zeros_like(voltage[..., 0]), 1,
            )
            return self.drop(spikes) if self.drop is not None else spikes

        def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
            _current, voltage = self.dynamics(input)
            return self.spike(voltage) if self.spiking else voltage

    _make_importable(ContractCubaNeuron)
    return ContractCubaNeuron


def build_blocks(
    chain: CubaChain, *, tau_grad: float = 1.0, scale_grad: float = 1.0, dtype: str = "float64"
) -> Any:
    """SLAYER CUBA blocks for a folded chain, as a ModuleList.

    Spiking dense layers are ``cuba.Dense``, non-spiking ones ``cuba.Affine`` (SLAYER's voltage
    readout), convolutions ``cuba.Conv``; a ``cuba.Flatten`` goes before a dense layer that follows a
    convolution or a multi-dimensional input.

    :param dtype: ``"float64"`` (default: spikes equal the reference) or ``"float32"`` (faster training;
        weights are rounded to float32, so a membrane within float32 rounding of the threshold may
        spike differently from the reference).
    """
    import torch

    from snnx.torch.backend import torch_dtype

    dtype_t = torch_dtype(dtype, "lava-dl")
    slayer = slayer_module()
    neuron_cls = _neuron_class()
    blocks = []
    # SlayerNetwork.input_layout already flattens the input of a leading dense layer.
    data_ndim = len(chain.in_shape) if chain.layers[0].kind == "conv" else 1
    for layer in chain.layers:
        neuron = neuron_cls(layer, tau_grad, scale_grad)
        params = {"threshold": 1.0, "current_decay": layer.current_decay, "voltage_decay": layer.voltage_decay}
        w = layer.weight
        if layer.kind == "dense":
            if data_ndim > 1:
                blocks.append(slayer.block.cuba.Flatten())
            # pre_hook_fx=None: no 8-bit weight quantisation in training (the `lava` backend quantises);
            # delay_shift=False: the contract has no per-layer delay (Loihi's is added back by `lava`).
            if layer.spiking:
                block = slayer.block.cuba.Dense(params, w.shape[1], w.shape[0], pre_hook_fx=None, delay_shift=False)
            else:
                block = slayer.block.cuba.Affine(params, w.shape[1], w.shape[0], pre_hook_fx=None)
            weight = torch.as_tensor(w).reshape(*w.shape, 1, 1, 1)
            data_ndim = 1
        else:
            block = slayer.block.cuba.Conv(
                params, w.shape[1] * layer.groups, w.shape[0], tuple(w.shape[2:]), stride=layer.stride,
                padding=layer.padding, dilation=layer.dilation, groups=layer.groups, pre_hook_fx=None,
                delay_shift=False,
            )
            weight = torch.as_tensor(w).unsqueeze(-1)
            data_ndim = 3
        block.neuron = neuron
        block.to(dtype_t)
        with torch.no_grad():
            block.synapse.weight.copy_(weight)
            if layer.bias is not None:
                block.synapse.bias = torch.nn.Parameter(torch.as_tensor(layer.bias, dtype=dtype_t))
        blocks.append(block)
    return torch.nn.ModuleList(blocks)


def _make_importable(cls: type) -> None:
    """Give a lazily built class its module-level name, so pickle / ``torch.save`` can find it again
    through this module's ``__getattr__``."""
    cls.__qualname__ = cls.__name__
    cls.__module__ = __name__


def __getattr__(name: str) -> Any:
    # The model classes subclass torch/SLAYER classes, so they are built on first use (PEP 562 lazy
    # attributes): `snnx --help` must not import torch, but torch.load must find them by name.
    if name == "ContractCubaNeuron":
        return _neuron_class()
    if name == "SlayerNetwork":
        slayer_module()  # unpickling goes on to SLAYER's blocks: import them patched and without banners
        return network_class()
    raise AttributeError(name)


@functools.cache  # one class per process, as for _neuron_class
def network_class() -> type:
    """The lowered model's ``torch.nn.Module`` class (built lazily: imports torch)."""
    import torch

    class SlayerNetwork(torch.nn.Module):
        """A lowered chain: SLAYER blocks plus what ``raise_`` needs to write NIR back.

        ``forward`` takes ``(T, batch, *input shape)`` and returns ``(T, batch, *output shape)``, like every
        snnx backend's model. The native SLAYER network (layout ``(batch, *data_shape, time)``, a dense
        layer's data shape flat) stays reachable: :attr:`slayer` (an ``nn.Sequential`` sharing the blocks'
        parameters) or :meth:`forward_slayer`.
        """

        #: ``forward`` is time-major (``snnx.bench`` and other callers need not convert layouts).
        time_major = True

        def __init__(self, chain: CubaChain, **block_options: Any) -> None:
            super().__init__()
            self.chain = chain
            self.blocks = build_blocks(chain, **block_options)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """``(T, batch, *input shape)`` -> ``(T, batch, *output shape)``, in the blocks' dtype."""
            x = torch.as_tensor(x).to(next(self.parameters()).dtype)
            y = self.forward_slayer(self.input_layout(x.movedim(0, -1)))
            y = y.movedim(-1, 0)
            return y.reshape(*y.shape[:2], *self.chain.out_shape)

        def forward_slayer(self, x: torch.Tensor) -> torch.Tensor:
            """The native SLAYER forward: ``(batch, *data_shape, T)`` in and out."""
            for block in self.blocks:
                x = block(x)
            return x

        @property
        def slayer(self) -> torch.nn.Sequential:
            """The native SLAYER network (time last), sharing this model's blocks and parameters."""
            return torch.nn.Sequential(*self.blocks)

        def input_layout(self, x: torch.Tensor) -> torch.Tensor:
            """``(batch, *NIR input shape, T)`` as the first block expects it."""
            if self.chain.layers[0].kind == "dense":
                return x.reshape(x.shape[0], -1, x.shape[-1])
            return x

        def folded_chain(self) -> CubaChain:
            """The chain with the (possibly trained) weights and biases of the blocks."""
            chain = copy.deepcopy(self.chain)
            synaptic = [b for b in self.blocks if hasattr(b, "synapse")]
            for layer, block in zip(chain.layers, synaptic):
                w = block.synapse.weight.detach().cpu().double().numpy()
                layer.weight = w.reshape(w.shape[:2]) if layer.kind == "dense" else w[..., 0]
                bias = block.synapse.bias
                layer.bias = None if bias is None else bias.detach().cpu().double().numpy()
            return chain

    _make_importable(SlayerNetwork)
    return SlayerNetwork


def grid_scale(weight: torch.Tensor) -> float:
    """``2**e`` with ``e = floor(log2(127 / max|w|))``: the finest power-of-two grid on which every weight
    of the layer is an 8-bit Loihi mantissa (the scale the ``lava`` backend picks for dyadic weights)."""
    peak = float(weight.detach().abs().max())
    return 2.0 ** math.floor(math.log2(WEIGHT_MAX / peak)) if peak > 0 else 1.0


@functools.cache
def _grid_class() -> type:
    import torch

    class LoihiGrid(torch.nn.Module):
        """Parametrization: values rounded to multiples of ``1/k`` (``k`` from the layer's weights), in
        ``[lo/k, hi/k]``, with a straight-through gradient (the rounding's derivative taken as 1)."""

        def __init__(self, lo: int, hi: int, scale_of: Any = None) -> None:
            super().__init__()
            self.lo, self.hi = lo, hi
            self._scale_of = [scale_of]  # a list: not registered as a submodule (that would recurse)

        def forward(self, value: torch.Tensor) -> torch.Tensor:
            scale = grid_scale(value if self._scale_of[0] is None else self._scale_of[0]())
            grid = torch.clamp(torch.round(value * scale), self.lo, self.hi) / scale
            return value + (grid - value).detach()

    return LoihiGrid


@contextlib.contextmanager
def loihi_grid(net: Any) -> Iterator[Any]:
    """Train a lava-dl model with its weights and biases on Loihi 2's fixed-point grid (quantisation-aware).

    Inside the ``with`` block every synapse's weights are rounded to the power-of-two grid of
    :func:`grid_scale` (at most 127 in magnitude) and its bias to the same grid (13-bit mantissa) in
    the forward pass, with a straight-through gradient; on exit the rounded values become the
    parameters. A layer whose threshold is a multiple of ``1/k`` then deploys on ``lava`` with exactly
    these numbers (snnx's quantisation picks that power of two), so only the voltage state's rounding
    at a decay differs from the reference. Used for fine-tuning after float training.
    """
    from torch.nn.utils import parametrize

    grid = _grid_class()
    synapses = [b.synapse for b in net.blocks if hasattr(b, "synapse")]
    for syn in synapses:
        parametrize.register_parametrization(syn, "weight", grid(-WEIGHT_MAX, WEIGHT_MAX))
        if syn.bias is not None:
            original = syn.parametrizations.weight.original
            parametrize.register_parametrization(syn, "bias", grid(BIAS_MIN, BIAS_MAX, lambda w=original: w))
    try:
        yield net
    finally:
        for syn in synapses:
            for name in ("bias", "weight"):  # the bias's grid reads the weight: bake it first
                if parametrize.is_parametrized(syn, name):
                    parametrize.remove_parametrizations(syn, name, leave_parametrized=True)


def to_slayer_layout(x: np.ndarray) -> np.ndarray:
    """``(T, batch, *shape)`` → ``(batch, *shape, T)``."""
    return np.moveaxis(np.asarray(x), 0, -1)


def from_slayer_layout(x: np.ndarray) -> np.ndarray:
    """``(batch, *shape, T)`` → ``(T, batch, *shape)``."""
    return np.moveaxis(np.asarray(x), -1, 0)
