"""Running a lowered chain in Lava: batches streamed as consecutive windows, latency removed.

Loihi delivers a layer's spikes one step later at the next layer, so a chain of ``L`` layers answers
``L`` steps late; the runner removes that latency, runs the batch as consecutive windows of ``T``
steps, and resets every layer's state at the start of its window, so each sample starts from zero
state as the contract requires. Lava is imported only inside the functions.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from snnx.errors import SnnxError
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.model import LavaModel
from snnx.plugins.loihi.netx import write_netx


def _stream(model: LavaModel, x: np.ndarray, *, graded: bool = False) -> tuple[np.ndarray, int, int]:
    """Time-major ``(T, B, *shape)`` inputs as one ``(N, B*T + L)`` stream of consecutive windows."""
    steps, batch = x.shape[:2]
    flat = x.reshape(steps, batch, -1)
    if not graded and not np.all((flat == 0) | (flat == 1)):
        msg = "Lava input must be binary spikes (0 or 1): Loihi's input layer sends unary spike events"
        raise SnnxError(msg)
    data = np.zeros((flat.shape[2], batch * steps + model.latency))
    data[:, : batch * steps] = flat.transpose(2, 1, 0).reshape(flat.shape[2], batch * steps)
    return data, steps, batch


def _unstream(model: LavaModel, out: np.ndarray, steps: int, batch: int) -> np.ndarray:
    """The inverse of :func:`_stream` on the output, with the chain's latency removed."""
    lat = model.latency
    y = out[:, lat : lat + batch * steps].reshape(out.shape[0], batch, steps).transpose(2, 1, 0)
    return y.reshape(steps, batch, *model.chain.out_shape)


def run_process(net: Any, inp: Any, out: Any, data: np.ndarray, tag: str) -> np.ndarray:
    """Feed ``data`` into port ``inp`` and record port ``out`` for every step of one Lava run."""
    source = import_lava("lava.proc.io.source")
    sink = import_lava("lava.proc.io.sink")
    run_configs = import_lava("lava.magma.core.run_configs")
    run_conditions = import_lava("lava.magma.core.run_conditions")
    steps = data.shape[1]
    src = source.RingBuffer(data=data)
    snk = sink.RingBuffer(shape=out.shape, buffer=steps)
    src.s_out.connect(inp)
    out.connect(snk.a_in)
    try:
        net.run(
            condition=run_conditions.RunSteps(num_steps=steps),
            run_cfg=run_configs.Loihi2SimCfg(select_tag=tag),
        )
        result = snk.data.get()
    finally:
        net.stop()
    return np.asarray(result, dtype=np.float64)


def run_fixed(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run the netx network on Lava's bit-accurate Loihi 2 model (``fixed_pt``)."""
    netx = import_lava("lava.lib.dl.netx")
    data, steps, batch = _stream(model, x)
    with tempfile.TemporaryDirectory(prefix="snnx-lava-") as tmp:
        path = os.path.join(tmp, "model.net")
        write_netx(model, path)
        # reset_offset=1: netx resets layer j at Lava time step (1 + j) mod T (time starts at 1),
        # i.e. on the step its window's first input arrives.
        net = netx.hdf5.Network(net_config=path, reset_interval=steps, reset_offset=1)
        out = run_process(net, net.inp, net.out, data, "fixed_pt")
    return _unstream(model, out, steps, batch)


def run_float(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run the chain as Lava ``Dense`` + ``LIFReset`` processes in floating point."""
    dense = import_lava("lava.proc.dense.process")
    lif = import_lava("lava.proc.lif.process")
    data, steps, batch = _stream(model, x, graded=True)
    first = last = None
    prev_out = None
    for j, layer in enumerate(model.chain.layers, start=1):
        # The first synapse takes graded input (message bits > 0 makes Dense multiply, not select).
        conn = dense.Dense(weights=layer.weight, num_message_bits=24 if j == 1 else 0)
        neurons = lif.LIFReset(
            shape=(layer.weight.shape[0],), du=layer.current_decay, dv=layer.voltage_decay,
            vth=layer.threshold, bias_mant=0.0, reset_interval=steps, reset_offset=(1 + j) % steps,
        )
        conn.a_out.connect(neurons.a_in)
        if prev_out is None:
            first = conn
        else:
            prev_out.connect(conn.s_in)
        prev_out, last = neurons.s_out, neurons
    out = run_process(first, first.s_in, last.s_out, data, "floating_pt")
    return _unstream(model, out, steps, batch)
