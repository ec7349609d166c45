"""A folded CUBA chain written back as NIR with the snnx contract (``raise_`` of ``lava-dl``).

The inverse of :mod:`snnx.plugins.loihi.cuba`: each layer becomes its original stateless nodes (while
untrained) or an ``Affine``/``Conv2d`` with the folded weights, plus the NIR neuron whose contract
update is exactly the layer's CUBA update. Pure numpy: no Lava or torch import.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.ir.nodes import is_cuba
from snnx.ir.semantics import set_graph_contract, set_node_contract
from snnx.plugins.loihi.cuba import CubaChain, CubaLayer

#: SLAYER's and Loihi's decay unit: decays are stored as integers out of 4096 (12-bit decays).
P_SCALE = 1 << 12


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
            if is_cuba(neuron) else None,
        )
        nodes[neu] = neuron
        edges.append((prev, neu))
        prev, data_shape = neu, out_shape
    nodes[chain.output] = nir.Output(output_type={"output": np.array(data_shape)})
    edges.append((prev, chain.output))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return set_graph_contract(graph, dt=dt)
