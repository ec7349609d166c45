"""Writing a quantised chain as a lava-dl netx HDF5 network (``lava.lib.dl.netx.hdf5.Network``).

The format Lava loads for Loihi 2; see ``specs/backends/lava.md``. Needs h5py only, not Lava.
"""

from __future__ import annotations

import os

import numpy as np

from snnx.plugins.loihi.model import LavaModel


def write_netx(model: LavaModel, path: str | os.PathLike) -> None:
    """Write the quantised chain as a lava-dl netx HDF5 network (``lava.lib.dl.netx.hdf5.Network``)."""
    import h5py

    chain = model.chain
    with h5py.File(path, "w") as f:
        f.attrs["snnx"] = "written by snnx: folded, quantised CUBA chain; see specs/backends/lava.md"
        layers = f.create_group("layer")
        entry = layers.create_group("0")
        entry.create_dataset("type", data=np.bytes_("input"))
        # netx reads shapes reversed (x, y, z); a dense chain is flat from the input on.
        entry.create_dataset("shape", data=np.array([int(np.prod(chain.in_shape))]))
        for i, (layer, q) in enumerate(zip(chain.layers, model.quantisation), start=1):
            entry = layers.create_group(str(i))
            entry.create_dataset("type", data=np.bytes_("dense"))
            entry.create_dataset("shape", data=np.array([layer.weight.shape[0]]))
            entry.create_dataset("weight", data=q.weight.astype(np.float64))
            neuron = entry.create_group("neuron")
            neuron.create_dataset("type", data=np.bytes_("CUBA"))
            neuron.create_dataset("iDecay", data=q.i_decay)
            neuron.create_dataset("vDecay", data=q.v_decay)
            neuron.create_dataset("vThMant", data=q.vth)
            neuron.create_dataset("refDelay", data=1)
            neuron.create_dataset("gradedSpike", data=False)
