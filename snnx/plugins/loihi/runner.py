"""Running a lowered chain in Lava: batches streamed as consecutive windows, latency removed.

Loihi delivers a layer's spikes one step later at the next layer, so a chain of ``L`` layers answers
``L`` steps late; the runner removes that latency, runs the batch as consecutive windows of ``T``
steps, and resets every layer's state at the start of its window, so each sample starts from zero
state as the contract requires. Lava is imported only inside the functions.
"""

from __future__ import annotations

import copy
import os
import tempfile
from typing import Any

import numpy as np

from snnx.errors import UnsupportedNodeError
from snnx.plugins.loihi.compat import import_lava
from snnx.plugins.loihi.model import LavaModel
from snnx.plugins.loihi.netx import write_netx
from snnx.plugins.loihi.cuba import CubaLayer
from snnx.plugins.loihi.quantise import (
    ATRLIF_VTH_MAX, BIAS_MAX, STATE_SHIFT, VTH_MAX, LayerQuantisation, quantise_layer,
)


def _lava_layout(model: LavaModel) -> bool:
    """Whether the input enters Lava as an ``(x, y, c)`` image (a first conv layer) rather than flat."""
    return model.chain.layers[0].kind == "conv"


def stream(model: LavaModel, x: np.ndarray, *, pulse: float = 1.0) -> tuple[np.ndarray, int, int]:
    """Time-major ``(T, B, *shape)`` inputs as one ``(*lava_shape, B*T + L)`` stream of consecutive windows.

    A chain with initial-state pulses gets its extra channels: ``pulse`` at step ``k`` of every window
    on channel ``k`` (or at step ``chain.pulse_steps[k]``).
    """
    steps, batch = x.shape[:2]
    if _lava_layout(model):
        sample = x.transpose(0, 1, *reversed(range(2, x.ndim)))  # (T, B, W, H, C)
    else:
        sample = x.reshape(steps, batch, -1)
        if model.chain.pulses:
            extra = np.zeros((steps, batch, model.chain.pulses))
            at = model.chain.pulse_steps or tuple(range(model.chain.pulses))
            for k, step in enumerate(at):
                if step < steps:
                    extra[step, :, k] = pulse
            sample = np.concatenate([sample, extra], axis=2)
    shape = sample.shape[2:]
    # time last, samples one after another: (..., B, T) -> (..., B*T)
    windows = np.moveaxis(sample, (0, 1), (-1, -2)).reshape(*shape, batch * steps)
    data = np.zeros((*shape, batch * steps + model.latency))
    data[..., : batch * steps] = windows
    return data, steps, batch


def unstream(model: LavaModel, out: np.ndarray, steps: int, batch: int) -> np.ndarray:
    """The inverse of :func:`stream` on the output ``(*lava_shape, steps)``, latency removed."""
    lat = model.latency
    y = out[..., lat : lat + batch * steps]
    y = np.moveaxis(y.reshape(*y.shape[:-1], batch, steps), (-1, -2), (0, 1))  # (T, B, *lava_shape)
    if model.chain.layers[-1].kind == "conv":
        y = y.transpose(0, 1, *reversed(range(2, y.ndim)))
    return y.reshape(steps, batch, *model.chain.out_shape)


def run_process(
    net: Any, inp: Any, out: Any, data: np.ndarray, tag: str, exceptions: dict[Any, type] | None = None,
    probe: Any = None, segment: int | None = None, restore: list[tuple[Any, np.ndarray]] | None = None,
    watch: list[Any] | None = None,
) -> Any:
    """Feed ``data`` into port ``inp`` and record port ``out`` for every step of one Lava run.

    ``exceptions`` maps snnx's own Lava process instances to their process models (Lava finds its own
    models by scanning its package; snnx's are named explicitly). With ``probe`` (a Lava ``Var``), the
    Var's value after every step is returned instead of ``out`` (Lava's ``Monitor``: how a voltage is
    read out of Loihi). ``inp`` may be a list of ports (the data goes to each), ``out`` and ``probe``
    lists (then a list of arrays is returned, one per port or Var).

    With ``segment``, the run pauses every ``segment`` steps (which must divide the data's length) and,
    before going on, sets every ``(Var, value)`` of ``restore`` (the network is built and compiled once).
    With ``watch`` (a list of Vars), their values after every step are recorded too and returned as a
    second value, ``(results, [array per Var])`` (how snnx checks that no state saturated).
    """
    source = import_lava("lava.proc.io.source")
    sink = import_lava("lava.proc.io.sink")
    run_configs = import_lava("lava.magma.core.run_configs")
    run_conditions = import_lava("lava.magma.core.run_conditions")
    steps = data.shape[-1]
    single = not isinstance(out, list)
    outs = [out] if single else out
    probes = None if probe is None else [probe] if single else probe
    src = source.RingBuffer(data=data)
    for port in inp if isinstance(inp, list) else [inp]:
        src.s_out.connect(port)
    sinks = []
    for port in outs:
        sinks.append(sink.RingBuffer(shape=tuple(int(d) for d in port.shape), buffer=steps))
        port.connect(sinks[-1].a_in)
    monitor = import_lava("lava.proc.monitor.process").Monitor
    # One Monitor per Var: a Monitor's data are keyed by process, and populations share names.
    monitors = [monitor() for _ in probes or []]
    watchers = [monitor() for _ in watch or []]
    for mon, var in [*zip(monitors, probes or []), *zip(watchers, watch or [])]:
        mon.probe(target=var, num_steps=steps)

    def recorded(mon: Any, var: Any) -> np.ndarray:
        (data,) = mon.get_data().values()
        return np.moveaxis(np.asarray(data[var.name], dtype=np.float64), 0, -1)  # time last

    run_cfg = run_configs.Loihi2SimCfg(select_tag=tag, exception_proc_model_map=exceptions or {})
    segment = segment or steps
    if steps % segment:
        raise ValueError(f"segments of {segment} steps do not divide a run of {steps}")
    try:
        for start in range(0, steps, segment):
            if start:
                for var, value in restore or []:
                    var.set(value)
            # A later run() continues the compiled network from where the last one paused.
            net.run(condition=run_conditions.RunSteps(num_steps=segment), run_cfg=run_cfg)
        if probes is None:
            results = [snk.data.get() for snk in sinks]
        else:
            results = [recorded(mon, var) for mon, var in zip(monitors, probes)]
        watched = [recorded(mon, var) for mon, var in zip(watchers, watch or [])]
    finally:
        net.stop()
    results = [np.asarray(r, dtype=np.float64) for r in results]
    out = results[0] if single else results
    return (out, watched) if watch else out


#: Largest number of fractional bits a graded input is sent with (Loihi 2 graded spikes are integers).
INPUT_FRACTION_BITS = 8
#: Message bits of a graded input spike.
INPUT_MESSAGE_BITS = 16


def fraction_bits_room(layer: CubaLayer, q: LayerQuantisation) -> int:
    """How many fractional input bits a first layer's threshold and bias mantissas can absorb
    (they grow by ``2**e``; Loihi's threshold has 17 bits, ATRLIF's (reset "subtract") 13 with the lowest
    always 0, its bias 13)."""
    room = INPUT_FRACTION_BITS
    if layer.spiking and q.vth > 0:
        vth_max = ATRLIF_VTH_MAX if layer.reset == "subtract" else VTH_MAX
        room = min(room, int(np.floor(np.log2(vth_max / q.vth))))
    if q.bias is not None and np.any(q.bias):
        room = min(room, int(np.floor(np.log2(BIAS_MAX / np.max(np.abs(q.bias))))))
    return room


def graded_input(x: np.ndarray, room: int = INPUT_FRACTION_BITS) -> tuple[int, bool]:
    """``(e, exact)``: the input is sent as graded spikes ``round(x * 2**e)``; the smallest ``e <= room``
    that makes every value an integer, else ``room`` (then the input is rounded)."""
    for e in range(max(room, 0) + 1):
        scaled = x * 2.0**e
        if np.all(scaled == np.round(scaled)):
            return e, True
    return room, False


def _for_graded_input(model: LavaModel, e: int) -> LavaModel:
    """The model whose first layer counts input in units of ``2**-e``: its threshold and bias mantissas
    (and its probed voltage's scale) grow by ``2**e``."""
    q = graded_quantisation(model.chain.layers[0], model.quantisation[0], e)
    return LavaModel(chain=model.chain, tag=model.tag, quantisation=[q, *model.quantisation[1:]])


def graded_quantisation(layer: CubaLayer, q: LayerQuantisation, e: int) -> LayerQuantisation:
    """``q`` of a first layer that counts its input in units of ``2**-e`` (mantissas and scale ``<< e``)."""
    q = copy.copy(q)
    if e < 0:
        msg = (
            f"node {q.layer!r}: graded input does not fit: the threshold/bias mantissas of the first layer "
            "leave no room for the input's fractional bits in Loihi's 17-bit threshold / 13-bit bias"
        )
        raise UnsupportedNodeError(msg)
    q.vth = q.vth << e if layer.spiking else q.vth
    q.bias = None if q.bias is None else q.bias << e
    q.scale = q.scale * (1 << e)
    return q


def run_fixed(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run the netx network on Lava's bit-accurate Loihi 2 model (``fixed_pt``).

    Binary input is sent as unary spikes; any other input as graded spikes (Loihi 2) with ``e``
    fractional bits (:func:`graded_input`, at most what the first layer's threshold and bias mantissas
    can absorb), exact when ``x * 2**e`` are integers.
    """
    netx = import_lava("lava.lib.dl.netx")
    binary = bool(np.all((x == 0) | (x == 1)))
    bits, pulse = 0, 1.0
    last = model.chain.layers[-1]
    if not last.spiking:
        # The probed voltage must stay in 24 bits for this run's length and input (voltage_bound).
        peak = float(np.max(np.abs(x))) if len(model.chain.layers) == 1 and x.size else 1.0
        q = quantise_layer(last, steps=x.shape[0], input_peak=peak)
        model = LavaModel(chain=model.chain, tag=model.tag, quantisation=[*model.quantisation[:-1], q])
    if not binary:
        # not exact: the input is rounded to 2**-e (measured, like the weights)
        e, _exact = graded_input(x, fraction_bits_room(model.chain.layers[0], model.quantisation[0]))
        model = _for_graded_input(model, e)
        x = np.round(x * 2.0**e)
        bits, pulse = INPUT_MESSAGE_BITS, 2.0**e
    data, steps, batch = stream(model, x, pulse=pulse)
    with tempfile.TemporaryDirectory(prefix="snnx-lava-") as tmp:
        path = os.path.join(tmp, "model.net")
        write_netx(model, path)
        # reset_offset=1: netx resets layer j at Lava time step (1 + j) mod T (time starts at 1),
        # i.e. on the step its window's first input arrives.
        net = netx.hdf5.Network(net_config=path, reset_interval=steps, reset_offset=1, input_message_bits=bits)
        if last.spiking:
            out = run_process(net, net.inp, net.out, data, "fixed_pt")
        else:
            # A non-spiking last layer (LI, I, CubaLI or a stateless readout) never fires: its voltage is
            # probed, in Loihi's units (mantissa << 6), and scaled back to the folded float units.
            out = run_process(net, net.inp, net.out, data, "fixed_pt", probe=net.layers[-1].neuron.v)
            out = out / (model.quantisation[-1].scale * (1 << STATE_SHIFT))
    return unstream(model, out, steps, batch)


def run_float(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run the chain as Lava processes in floating point (:mod:`snnx.plugins.loihi.processes`)."""
    from snnx.plugins.loihi.processes import build_float

    data, steps, batch = stream(model, x)
    net = build_float(model.chain, steps)
    out = run_process(net.first, net.inp, net.out, data, "floating_pt", net.exceptions)
    return unstream(model, out, steps, batch)
