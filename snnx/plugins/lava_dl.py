"""The ``lava-dl`` backend: a NIR chain as a SLAYER network of ``lava.lib.dl.slayer`` CUBA blocks.

The model is an ordinary ``torch.nn.Module`` that trains with SLAYER's surrogate gradient
(``slayer.spike.Spike``) on CPU. Its neurons run the contract in floating point (SLAYER's own
CUBA forward works on a 1/4096 integer grid with 12-bit decays, which is Loihi's arithmetic but not
the contract's); the fixed-point version is the ``lava`` backend's job. See ``specs/backends/lava-dl.md``.

Layout: SLAYER puts time last, ``(batch, channels, [height, width,] time)``; :meth:`LavaDlBackend.run`
converts from and to snnx's time-major ``(T, batch, *shape)``.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.plugins._cuba import CHAIN_NODE_TYPES, CubaChain, CubaLayer, chain_or_raise, extract_chain
from snnx.ir.capabilities import Capabilities
from snnx.registry import Backend

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: SLAYER's decay unit: decays are stored as integers out of 4096 (Loihi's 12-bit decays).
P_SCALE = 1 << 12


def _slayer() -> Any:
    from snnx.lava_compat import import_lava

    return import_lava("lava.lib.dl.slayer")


@functools.cache  # one class per process, so pickled models find the class they were saved with
def _neuron_class() -> type:
    """SLAYER's CUBA neuron with the contract's floating-point forward (built lazily: imports torch)."""
    import torch

    slayer = _slayer()
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
    slayer = _slayer()
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
        _slayer()  # unpickling goes on to SLAYER's blocks: import them patched and without banners
        return _network_class()
    raise AttributeError(name)


@functools.cache  # one class per process, as for _neuron_class
def _network_class() -> type:
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


def _neuron_node(layer: CubaLayer, dt: float, gain: np.ndarray | None, shape: tuple[int, ...]) -> nir.NIRNode:
    """The NIR neuron whose contract update is exactly this layer's CUBA update.

    ``gain`` multiplies the synaptic input (``r`` for LIF/IF/LI/I, ``w_in`` for Cuba*): the folding gain
    when the original stateless nodes are written back, ones when the folded weights are.
    """
    du, dv = layer.current_decay, layer.voltage_decay
    full = np.ones(shape)
    g = full if gain is None else np.reshape(gain, shape)
    v_bias = np.reshape(np.asarray(layer.v_bias) * np.ones(layer.data_shape), shape)
    theta = (layer.threshold if layer.spiking else 1.0) * full
    v_reset = np.reshape(np.asarray(layer.v_reset) * np.ones(layer.data_shape), shape)
    if du == 1.0 and dv == 0.0 and not np.any(v_bias):
        if layer.spiking:
            return nir.IF(r=g / dt, v_threshold=theta, v_reset=v_reset)
        return nir.I(r=g / dt)
    if du == 1.0 and dv > 0:
        if layer.spiking:
            return nir.LIF(tau=dt / dv * full, r=g / dv, v_leak=v_bias / dv, v_threshold=theta, v_reset=v_reset)
        return nir.LI(tau=dt / dv * full, r=g / dv, v_leak=v_bias / dv)
    if 0 < du < 1 and dv > 0:
        common = {"tau_syn": dt / du * full, "tau_mem": dt / dv * full, "r": full / dv, "v_leak": v_bias / dv,
                  "w_in": g / du}
        if layer.spiking:
            return nir.CubaLIF(**common, v_threshold=theta, v_reset=v_reset)
        return nir.CubaLI(**common)
    msg = (
        f"layer {layer.nodes[-1]!r}: current_decay={du * P_SCALE:g}/4096 with voltage_decay={dv * P_SCALE:g}/4096 "
        "has no NIR equivalent (a non-decaying current or a voltage leak without decay needs an infinite "
        "tau); keep both decays above zero or the current decay at 4096"
    )
    raise SnnxError(msg)


def _untrained(layer: CubaLayer) -> bool:
    if layer.lowered is None:
        return False
    weight, bias = layer.lowered
    same_bias = (bias is None and layer.bias is None) or (
        bias is not None and layer.bias is not None and np.array_equal(bias, layer.bias)
    )
    return same_bias and np.array_equal(weight, layer.weight)


def chain_to_nir(chain: CubaChain) -> nir.NIRGraph:
    """Write a folded chain back as NIR with the snnx contract.

    A layer whose weights are as lowered is written as its original stateless nodes plus a neuron that
    applies the folding gain, so the graph keeps its shapes. A trained layer is written as ``Affine``
    (after a ``Flatten`` when its input is not flat) or ``Conv2d`` with the folded weights; a trained
    dense layer's neurons are then flat.
    """
    from snnx.ir.semantics import set_graph_contract, set_node_contract

    dt = chain.dt
    nodes: dict[str, nir.NIRNode] = {chain.input: nir.Input(input_type={"input": np.array(chain.in_shape)})}
    edges: list[tuple[str, str]] = []
    prev, data_shape = chain.input, chain.in_shape
    for layer in chain.layers:
        neu = layer.nodes[-1]
        if _untrained(layer) and data_shape == layer.in_shape:
            for name, node in layer.source:
                nodes[name] = copy.deepcopy(node)
                edges.append((prev, name))
                prev = name
            neuron = _neuron_node(layer, dt, layer.gain, layer.out_shape)
            out_shape = layer.out_shape
        else:
            syn = layer.nodes[0] if len(layer.nodes) > 1 else f"{neu}.synapse"
            w = layer.weight
            bias = layer.bias if layer.bias is not None else np.zeros(w.shape[0])
            if layer.kind == "dense":
                if len(data_shape) > 1:
                    flat = f"{syn}.flatten"
                    nodes[flat] = nir.Flatten(input_type={"input": np.array(data_shape)}, start_dim=0, end_dim=-1)
                    edges.append((prev, flat))
                    prev = flat
                nodes[syn] = nir.Affine(weight=w, bias=bias)
            elif data_shape != layer.in_shape:
                msg = (
                    f"cannot write layer {neu!r} back to NIR: it is a convolution after a trained layer whose "
                    f"neurons were composed into a flat dense layer (NIR has no reshape from {data_shape} "
                    f"to {layer.in_shape})"
                )
                raise SnnxError(msg)
            else:
                nodes[syn] = nir.Conv2d(
                    input_shape=tuple(data_shape[1:]), weight=w, stride=layer.stride, padding=layer.padding,
                    dilation=layer.dilation, groups=layer.groups, bias=bias,
                )
            edges.append((prev, syn))
            prev = syn
            out_shape = layer.data_shape
            neuron = _neuron_node(layer, dt, None, out_shape)
        set_node_contract(
            neuron,
            reset=layer.reset if layer.spiking else None,
            v_init=np.reshape(np.asarray(layer.v_init) * np.ones(layer.data_shape), out_shape),
            i_init=np.reshape(np.asarray(layer.u_init) * np.ones(layer.data_shape), out_shape)
            if isinstance(neuron, (nir.CubaLIF, nir.CubaLI)) else None,
        )
        nodes[neu] = neuron
        edges.append((prev, neu))
        prev, data_shape = neu, out_shape
    nodes[chain.output] = nir.Output(output_type={"output": np.array(data_shape)})
    edges.append((prev, chain.output))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return set_graph_contract(graph, dt=dt)


def to_slayer_layout(x: np.ndarray) -> np.ndarray:
    """``(T, batch, *shape)`` → ``(batch, *shape, T)``."""
    return np.moveaxis(np.asarray(x), 0, -1)


def from_slayer_layout(x: np.ndarray) -> np.ndarray:
    """``(batch, *shape, T)`` → ``(T, batch, *shape)``."""
    return np.moveaxis(np.asarray(x), -1, 0)


class LavaDlBackend(Backend):
    """SLAYER (lava-dl) CUBA blocks, trainable on CPU with SLAYER's surrogate gradients."""

    name = "lava-dl"
    description = "lava-dl SLAYER CUBA blocks (Dense, Conv, Flatten); trains on CPU, exact float forward"
    capabilities = Capabilities(node_types=CHAIN_NODE_TYPES, cycles=False, v_init=True)
    # find_spec only: importing Lava costs seconds, which `snnx info` must not pay per backend;
    # an install that is present but broken is reported when the backend is used (import_lava).
    install_hint = "snnx install lava"
    requires = ("lava.magma.core", "lava.lib.dl.slayer", "torch")
    file_suffix = ".pt"

    def refusals(self, graph: nir.NIRGraph) -> list[str]:
        """Requirement, node-type and cycle refusals; when there are none, why the chain cannot be folded."""
        reasons = super().refusals(graph)
        if reasons:
            return reasons
        _chain, reasons = extract_chain(graph)
        return reasons

    def lower(
        self, graph: nir.NIRGraph, *, tau_grad: float = 1.0, scale_grad: float = 1.0, dtype: str = "float64",
        **options: Any,
    ) -> Any:
        """Build the SLAYER network.

        :param tau_grad: width of SLAYER's surrogate spike derivative, relative to the threshold.
        :param scale_grad: height of the surrogate derivative.
        :param dtype: ``"float64"`` (exact, the default) or ``"float32"`` (faster training).
        """
        if options:
            msg = f"Backend 'lava-dl' got unknown options {sorted(options)}; it takes tau_grad, scale_grad, dtype"
            raise SnnxError(msg)
        from snnx.torch.backend import torch_dtype

        torch_dtype(dtype, self.name)  # refuse a bad dtype before folding the graph
        chain = chain_or_raise(graph, self.name)
        return _network_class()(chain, tau_grad=tau_grad, scale_grad=scale_grad, dtype=dtype)

    def run(self, model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        chain: CubaChain = model.chain
        if set(inputs) != {chain.input}:
            msg = f"lava-dl model expects input {chain.input!r}, got {sorted(inputs)}"
            raise SnnxError(msg)
        dtype = next(model.parameters()).dtype
        x = torch.as_tensor(np.asarray(inputs[chain.input]), dtype=dtype)
        with torch.no_grad():
            y = model.eval()(x)  # time-major in and out
        return {chain.output: y.double().numpy()}

    def raise_(self, model: Any) -> nir.NIRGraph:
        return chain_to_nir(model.folded_chain())

    def save(self, model: Any, path: str) -> None:
        import torch

        from snnx.ir.io import write_atomic

        write_atomic(path, lambda tmp: torch.save(model, tmp))

    def load(self, path: str) -> Any:
        """Read a model written by :meth:`save` (a pickled module: only load files you trust)."""
        from snnx.torch.backend import read_torch_module

        _slayer()  # unpickling imports SLAYER's blocks: import them patched and without banners first
        model = read_torch_module(path, "a lava-dl model")
        if type(model).__name__ != "SlayerNetwork" or not hasattr(model, "chain"):
            msg = f"'{path}' holds a {type(model).__name__}, not a lava-dl SlayerNetwork"
            raise SnnxError(msg)
        return model

    def describe(self, model: Any) -> str:
        layers = iter(model.chain.layers)
        parts = []
        for block in model.blocks:
            if not hasattr(block, "synapse"):
                parts.append(type(block).__name__)
                continue
            layer = next(layers)
            shape = "x".join(map(str, layer.data_shape))
            parts.append(f"{type(block).__name__}[{shape}]({layer.neuron_type} {', '.join(layer.nodes)})")
        return "SLAYER CUBA blocks: " + " -> ".join(parts)


@hookimpl
def snnx_register_backends(register) -> None:  # noqa: ANN001 - BackendRegistrar
    register(LavaDlBackend())
