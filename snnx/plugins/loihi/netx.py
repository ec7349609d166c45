"""Writing a quantised chain as a lava-dl netx HDF5 network (``lava.lib.dl.netx.hdf5.Network``).

The format Lava loads for Loihi 2; see ``specs/backends/lava.md``. Needs h5py only, not Lava.
"""

from __future__ import annotations

import os

import numpy as np

from snnx.plugins.loihi.model import LavaModel


def write_netx(model: LavaModel, path: str | os.PathLike) -> None:
    """Write the quantised chain as a lava-dl netx HDF5 network (``lava.lib.dl.netx.hdf5.Network``).

    Layers: ``input`` (the graph input's shape), then per layer ``conv`` (weight ``(out, in/groups, kH,
    kW)``, stride/padding/dilation as ``(H, W)``: netx reverses shapes to its ``(x, y, c)`` order and
    flips the kernel itself) or ``dense``, each with a ``CUBA`` neuron; a ``flatten`` entry before a
    dense layer that follows a conv layer (netx flattens in ``(c, y, x)`` order, NIR's). Neuron
    biases (``v_leak`` and synapse biases folded into ``bias_mant``) are written per neuron.
    """
    import h5py

    chain = model.chain
    with h5py.File(path, "w") as f:
        f.attrs["snnx"] = "written by snnx: folded, quantised CUBA chain; see specs/backends/lava.md"
        layers = f.create_group("layer")
        index = iter(range(1 << 20))

        def entry_of(kind: str) -> h5py.Group:
            entry = layers.create_group(str(next(index)))
            entry.create_dataset("type", data=np.bytes_(kind))
            return entry

        entry = entry_of("input")
        first_conv = chain.layers[0].kind == "conv"
        # netx reads shapes reversed (x, y, c); a chain that starts dense is flat from the input on.
        # The first layer's initial-state pulses are extra input axons after the flat input.
        flat = int(np.prod(chain.in_shape)) + chain.pulses
        entry.create_dataset("shape", data=np.array(chain.in_shape if first_conv else [flat]))
        prev_conv = first_conv
        for layer, q in zip(chain.layers, model.quantisation):
            if layer.kind == "conv":
                entry = entry_of("conv")
                entry.create_dataset("shape", data=np.array(layer.out_shape))
                entry.create_dataset("weight", data=q.weight.astype(np.float64))
                entry.create_dataset("stride", data=np.array(layer.stride))
                entry.create_dataset("padding", data=np.array(layer.padding))
                entry.create_dataset("dilation", data=np.array(layer.dilation))
                entry.create_dataset("groups", data=layer.groups)
                entry.create_dataset("inChannels", data=q.weight.shape[1] * layer.groups)
                entry.create_dataset("outChannels", data=q.weight.shape[0])
                entry.create_dataset("kernelSize", data=np.array(q.weight.shape[2:]))
            else:
                if prev_conv:
                    entry_of("flatten").create_dataset("shape", data=np.array([int(np.prod(layer.in_shape)), 1, 1]))
                entry = entry_of("dense")
                entry.create_dataset("shape", data=np.array([q.weight.shape[0]]))
                entry.create_dataset("weight", data=q.weight.astype(np.float64))
            if q.bias is not None:
                bias = q.bias.transpose(*reversed(range(q.bias.ndim))) if layer.kind == "conv" else q.bias
                entry.create_dataset("bias", data=bias.astype(np.float64))
            prev_conv = layer.kind == "conv"
            neuron = entry.create_group("neuron")
            neuron.create_dataset("type", data=np.bytes_("CUBA"))
            neuron.create_dataset("iDecay", data=q.i_decay)
            neuron.create_dataset("vDecay", data=q.v_decay)
            neuron.create_dataset("vThMant", data=q.vth)
            neuron.create_dataset("refDelay", data=1)
            neuron.create_dataset("gradedSpike", data=False)
