"""Lava processes for the ``lava-float`` backend: a folded chain as Lava synapse and neuron processes.

Synapses are Lava's own ``Dense`` and ``Conv``. A layer Loihi's own CUBA neuron can run (see
:attr:`snnx.plugins.loihi.cuba.CubaLayer.standard`) is Lava's ``LIFReset``; any other layer is a
:func:`contract_cuba` process: the same CUBA update plus what the contract adds and Lava's ``LIF``
lacks (reset "subtract" or to ``v_reset``, initial ``u``/``v`` restored every window, a bias into the
current, a non-spiking layer that sends its voltage as a graded spike, per-neuron decays, and an
``s_rec`` port for a recurrent synapse that is cut at each window's last step). On Loihi 2 such a neuron
is a custom neuron program (microcode); netx and the ``lava`` backend only write the standard CUBA neuron.

Lava's data layout is ``(x, y, c)`` = ``(W, H, C)``; NIR's is ``(C, H, W)``. Classes that subclass Lava's
are built on first use (importing Lava costs seconds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer

#: Message bits of a graded spike into Lava's Dense/Conv (anything > 0 makes them multiply, not select).
GRADED_BITS = 24


@functools.cache
def contract_cuba() -> tuple[type, type]:
    """``(ContractCuba, PyContractCubaModelFloat)``: the contract's CUBA neuron as a Lava process."""
    process = import_lava("lava.magma.core.process.process")
    variable = import_lava("lava.magma.core.process.variable")
    ports = import_lava("lava.magma.core.process.ports.ports")
    decorator = import_lava("lava.magma.core.decorator")
    resources = import_lava("lava.magma.core.resources")
    protocol = import_lava("lava.magma.core.sync.protocols.loihi_protocol")
    py_model = import_lava("lava.magma.core.model.py.model")
    py_ports = import_lava("lava.magma.core.model.py.ports")
    py_type = import_lava("lava.magma.core.model.py.type")
    Var, LavaPyType = variable.Var, py_type.LavaPyType

    class ContractCuba(process.AbstractProcess):
        """CUBA neuron with the contract's reset, initial state and readout (floating point); its decays
        may differ between neurons.

        Per step: ``u = (1-du) u + (a_in + u_bias)``; ``v = (1-dv) v + u + v_bias``; spiking layers send
        ``v > vth`` and reset ``v`` to ``v_reset`` or subtract ``vth``; non-spiking layers send ``v``.
        Every ``reset_interval`` steps, at ``reset_offset``, ``u``/``v`` restart from ``u_init``/``v_init``.
        """

        def __init__(self, *, shape: tuple[int, ...], du: Any, dv: Any, vth: float | None,
                     subtract: bool, v_reset: Any, u_bias: Any, v_bias: Any, u_init: Any, v_init: Any,
                     reset_interval: int, reset_offset: int, rec_bias: Any = 0.0) -> None:
            super().__init__(shape=shape, reset_interval=reset_interval, reset_offset=reset_offset,
                             spiking=vth is not None, subtract=subtract)

            def full(value: Any) -> np.ndarray:
                return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()

            self.a_in = ports.InPort(shape=shape)
            self.s_out = ports.OutPort(shape=shape)
            # The spikes for a recurrent synapse: zero on the last step of every window, so the
            # previous window's last spikes do not reach this window's first step.
            self.s_rec = ports.OutPort(shape=shape)
            self.u = Var(shape=shape, init=full(u_init))
            self.v = Var(shape=shape, init=full(v_init))
            for name, value in (("u_init", u_init), ("v_init", v_init), ("u_bias", u_bias),
                                ("v_bias", v_bias), ("v_reset", v_reset), ("du", du), ("dv", dv),
                                ("rec_bias", rec_bias)):
                setattr(self, name, Var(shape=shape, init=full(value)))
            self.vth = Var(shape=(1,), init=0.0 if vth is None else vth)

    @decorator.implements(proc=ContractCuba, protocol=protocol.LoihiProtocol)
    @decorator.requires(resources.CPU)
    @decorator.tag("floating_pt")
    class PyContractCubaModelFloat(py_model.PyLoihiProcessModel):
        a_in = LavaPyType(py_ports.PyInPort.VEC_DENSE, float)
        s_out = LavaPyType(py_ports.PyOutPort.VEC_DENSE, float)
        s_rec = LavaPyType(py_ports.PyOutPort.VEC_DENSE, float)
        u = LavaPyType(np.ndarray, float)
        v = LavaPyType(np.ndarray, float)
        u_init = LavaPyType(np.ndarray, float)
        v_init = LavaPyType(np.ndarray, float)
        u_bias = LavaPyType(np.ndarray, float)
        v_bias = LavaPyType(np.ndarray, float)
        v_reset = LavaPyType(np.ndarray, float)
        rec_bias = LavaPyType(np.ndarray, float)
        du = LavaPyType(np.ndarray, float)
        dv = LavaPyType(np.ndarray, float)
        vth = LavaPyType(float, float)

        def __init__(self, proc_params: Any) -> None:
            super().__init__(proc_params)
            self.reset_interval = proc_params["reset_interval"]
            self.reset_offset = proc_params["reset_offset"] % self.reset_interval
            self.spiking = proc_params["spiking"]
            self.subtract = proc_params["subtract"]

        def run_spk(self) -> None:
            a_in = self.a_in.recv()
            if self.time_step % self.reset_interval == self.reset_offset:
                self.u[:] = self.u_init
                self.v[:] = self.v_init
            else:  # the recurrent run's bias arrives over the back edge: from a window's second step
                a_in = a_in + self.rec_bias
            self.u[:] = (1 - self.du) * self.u + (a_in + self.u_bias)
            self.v[:] = (1 - self.dv) * self.v + self.u + self.v_bias
            if not self.spiking:
                self.s_out.send(self.v.copy())
                self.s_rec.send(np.zeros_like(self.v))
                return
            fired = self.v > self.vth
            if self.subtract:
                self.v[fired] -= self.vth
            else:
                self.v[fired] = self.v_reset[fired]
            spikes = fired.astype(np.float64)
            self.s_out.send(spikes)
            last = (self.time_step + 1) % self.reset_interval == self.reset_offset
            self.s_rec.send(np.zeros_like(spikes) if last else spikes)

    return ContractCuba, PyContractCubaModelFloat


def lava_order(x: np.ndarray) -> np.ndarray:
    """A per-sample array from NIR's ``(C, H, W)`` (or ``(C, L)``, ``(N,)``) to Lava's reversed order."""
    return np.asarray(x).transpose(*reversed(range(np.ndim(x))))


def lava_conv_weight(w: np.ndarray) -> np.ndarray:
    """NIR/PyTorch conv weight ``(out, in/g, kH, kW)`` (a correlation) as Lava's ``Conv`` weight
    ``(out, kW, kH, in/g)``, which Lava applies as a true convolution (kernel flipped)."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


@dataclass
class FloatNetwork:
    """The built processes: feed ``inp``, read ``out``; ``exceptions`` maps each snnx process (the
    instance: Lava 0.10's compiler looks instances up, not classes) to its process model."""

    first: Any
    inp: Any
    out: Any
    exceptions: dict[Any, type]
    kinds: list[str]


def _neuron(layer: CubaLayer, shape: tuple[int, ...], steps: int, offset: int) -> tuple[Any, str]:
    """Lava's ``LIFReset`` for a standard layer, else a :func:`contract_cuba` process."""
    conv = layer.kind == "conv"

    def arr(value: Any) -> np.ndarray:
        full = np.asarray(value, dtype=np.float64) * np.ones(layer.data_shape)
        return lava_order(full) if conv else full

    if layer.standard:
        lif = import_lava("lava.proc.lif.process")
        return lif.LIFReset(
            shape=shape, du=layer.current_decay, dv=layer.voltage_decay, vth=layer.threshold,
            bias_mant=arr(layer.voltage_bias()), reset_interval=steps, reset_offset=offset,
        ), "LIFReset"
    cls, _model = contract_cuba()
    du, dv = layer.neuron_decays or (layer.current_decay, layer.voltage_decay)
    # The synapse bias goes into the current, as in the contract (z = Wx + b); v_bias is the leak term.
    return cls(
        shape=shape, du=arr(du), dv=arr(dv), vth=layer.threshold,
        subtract=layer.reset == "subtract", v_reset=arr(layer.v_reset), u_bias=arr(layer.channel_bias()),
        v_bias=arr(layer.v_bias), u_init=arr(layer.u_init), v_init=arr(layer.v_init),
        reset_interval=steps, reset_offset=offset,
        rec_bias=arr(0.0 if layer.recurrent_bias is None else layer.recurrent_bias),
    ), "Readout" if layer.readout else "ContractCuba"


def build_float(chain: CubaChain, steps: int) -> FloatNetwork:
    """Lava processes for ``chain``; layer ``j`` (from 1) restarts its state at step ``1 + j`` of every
    window of ``steps`` (Lava time starts at 1 and each synapse delays by one step)."""
    dense = import_lava("lava.proc.dense.process")
    conv_proc = import_lava("lava.proc.conv.process")
    first = inp = None
    prev_out, prev_shape, graded = None, None, True  # the graph input may be graded
    kinds, exceptions = [], {}
    for j, layer in enumerate(chain.layers, start=1):
        bits = GRADED_BITS if graded else 0
        if layer.kind == "conv":
            in_shape = tuple(reversed(layer.in_shape))
            syn = conv_proc.Conv(
                weight=lava_conv_weight(layer.weight), input_shape=in_shape, padding=layer.padding[::-1],
                stride=layer.stride[::-1], dilation=layer.dilation[::-1], groups=layer.groups,
                num_message_bits=bits,
            )
            shape = tuple(reversed(layer.out_shape))
        else:
            syn = dense.Dense(weights=layer.weight, num_message_bits=bits)
            shape = (layer.weight.shape[0],)
        neuron, kind = _neuron(layer, shape, steps, (1 + j) % steps)
        kinds.append(f"{'Conv' if layer.kind == 'conv' else 'Dense'}+{kind}")
        if kind != "LIFReset":
            exceptions[neuron] = contract_cuba()[1]
        syn.a_out.connect(neuron.a_in)
        if layer.recurrent is not None:
            # Lava's Dense delivers the previous step's spikes: the contract's back edge.
            rec = dense.Dense(weights=layer.recurrent, num_message_bits=0)
            neuron.s_rec.connect(rec.s_in)
            rec.a_out.connect(neuron.a_in)
        if prev_out is None:
            first, inp = syn, syn.s_in
        elif layer.kind == "dense" and len(prev_shape) > 1:
            # Lava (W, H, C) back to NIR's (C, H, W) before flattening, as netx does.
            prev_out.transpose(list(reversed(range(len(prev_shape))))).flatten().connect(syn.s_in)
        else:
            prev_out.connect(syn.s_in)
        prev_out, prev_shape, graded = neuron.s_out, shape, not layer.spiking
    return FloatNetwork(first=first, inp=inp, out=prev_out, exceptions=exceptions, kinds=kinds)
