"""Lava deployment backends (``lava``: bit-accurate Loihi 2, ``lava-float``) and ``snnx install lava``.

* ``lava`` lowers a chain to a lava-dl ``netx`` HDF5 network (the format Lava loads for Loihi 2),
  quantised by snnx to Loihi's fixed point, and runs it with ``Loihi2SimCfg(select_tag="fixed_pt")``:
  Lava's bit-accurate model of the Loihi 2 neuron core.
* ``lava-float`` builds the same chain from Lava's ``Dense`` and ``LIFReset`` processes with float
  parameters and runs it with ``Loihi2SimCfg(select_tag="floating_pt")``.

Both fold the contract into Loihi's CUBA neuron (:mod:`snnx.plugins._cuba`). Loihi delivers a layer's
spikes one step later at the next layer, so a chain of ``L`` layers answers ``L`` steps late; ``run``
removes that latency, runs the batch as consecutive windows of ``T`` steps, and resets every layer's
state at the start of its window, so each sample starts from zero state as the contract requires.
See ``specs/backends/lava.md``.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import nir
import numpy as np

from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.hookspecs import hookimpl
from snnx.plugins._cuba import CubaChain, CubaLayer, chain_or_raise, extract_chain, loihi_refusals
from snnx.ir.capabilities import Capabilities
from snnx.registry import Backend

if TYPE_CHECKING:  # pragma: no cover
    import click

#: Loihi 2 number formats used by netx / Lava's bit-accurate LIF and Dense models.
WEIGHT_MAX = 127  # 8-bit signed weight mantissa (netx keeps |w| <= 127 exact)
WEIGHT_MIN = -128
VTH_MAX = (1 << 17) - 1  # 17-bit unsigned threshold mantissa
DECAY_UNIT = 1 << 12  # 12-bit decays: du, dv in units of 1/4096
STATE_LIMIT = (1 << 23) - 1  # 24-bit signed voltage and current
STATE_SHIFT = 6  # Loihi stores u and v with 6 fractional bits relative to weights and thresholds

LAVA_NODE_TYPES = frozenset({"Input", "Output", "Affine", "Linear", "Scale", "Flatten", "Conv1d", "Conv2d",
                             "SumPool2d", "AvgPool2d", "LIF", "IF", "CubaLIF"})


@dataclass
class LayerQuantisation:
    """How one layer was put into Loihi's fixed point, and what that cost.

    ``scale`` maps folded float units to integer mantissas (``w_int = round(scale * w)``,
    ``vth = round(scale * theta)``); errors are in units of the layer's threshold.
    """

    layer: str
    scale: float
    weight: np.ndarray
    vth: int
    i_decay: int
    v_decay: int
    clipped: int
    weight_error: float
    threshold_error: float
    current_decay_error: float
    voltage_decay_error: float
    max_input: int
    exact: bool

    def row(self) -> str:
        """One line of :meth:`LavaModel.report`."""
        return (
            f"{self.layer:<16} scale={self.scale:<10.5g} vth={self.vth:<6d} iDecay={self.i_decay:<4d} "
            f"vDecay={self.v_decay:<4d} clipped={self.clipped:<3d} max|dw|={self.weight_error:.2e} "
            f"|dth|={self.threshold_error:.2e} |ddu|={self.current_decay_error:.1e} "
            f"|ddv|={self.voltage_decay_error:.1e} max|in|={self.max_input} exact={'yes' if self.exact else 'no'}"
        )


def _power_of_two_scale(weight: np.ndarray, threshold: float, peak: float) -> float | None:
    """A scale 2**k that makes every weight and the threshold an exact in-range integer, if one exists.

    ``peak`` is ``max|weight|`` (0 for no weights).
    """
    if peak == 0.0:
        return None
    top = math.floor(math.log2(WEIGHT_MAX / peak))
    for k in range(top, top - 40, -1):
        scale = 2.0**k
        w, th = weight * scale, threshold * scale
        if th > VTH_MAX:
            continue
        if np.all(w == np.round(w)) and th == round(th) and th >= 1:
            return scale
    return None


def quantise_layer(layer: CubaLayer) -> LayerQuantisation:
    """Quantise one folded layer to Loihi's formats (see ``specs/backends/lava.md``).

    The scale is the largest that keeps weights in 8 bits (``127 / max|w|``) and the threshold in 17
    bits; a power-of-two scale is used instead when it represents every weight and the threshold
    exactly, because then the float reference sums the same numbers without rounding.
    """
    theta = float(layer.threshold)
    w = layer.weight
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    exact_scale = _power_of_two_scale(w, theta, peak)
    if exact_scale is not None:
        scale = exact_scale
    else:
        scale = WEIGHT_MAX / peak if peak > 0 else 1.0
        scale = min(scale, VTH_MAX / theta)
    raw = np.round(w * scale)
    w_int = np.clip(raw, WEIGHT_MIN, WEIGHT_MAX).astype(np.int64)
    clipped = int(np.sum(raw != w_int))
    vth = int(min(max(round(theta * scale), 0), VTH_MAX))
    i_decay = int(round(layer.current_decay * DECAY_UNIT))
    v_decay = int(round(layer.voltage_decay * DECAY_UNIT))
    weight_error = float(np.max(np.abs(w_int / scale - w))) / theta if w.size else 0.0
    threshold_error = abs(vth / scale - theta) / theta
    du_err = abs(i_decay / DECAY_UNIT - layer.current_decay)
    dv_err = abs(v_decay / DECAY_UNIT - layer.voltage_decay)
    fan_in = np.abs(w_int).reshape(w_int.shape[0], -1).sum(axis=1) if w.size else np.zeros(1)
    # Exact means: integer arithmetic with no rounding (no decays) on exactly represented parameters.
    exact = (
        exact_scale is not None and clipped == 0 and weight_error == 0 and threshold_error == 0
        and i_decay == DECAY_UNIT and v_decay == 0 and du_err == 0 and dv_err == 0
    )
    return LayerQuantisation(
        layer=layer.nodes[-1], scale=scale, weight=w_int, vth=vth, i_decay=i_decay, v_decay=v_decay,
        clipped=clipped, weight_error=weight_error, threshold_error=threshold_error,
        current_decay_error=du_err, voltage_decay_error=dv_err, max_input=int(fan_in.max()), exact=exact,
    )


def quantisation_refusals(quant: list[LayerQuantisation]) -> list[str]:
    """Why fixed point would not equal the reference spike for spike (empty when it would)."""
    reasons = []
    for q in quant:
        if q.exact:
            continue
        what = []
        if q.weight_error or q.threshold_error or q.clipped:
            what.append(f"weights/threshold off by up to {max(q.weight_error, q.threshold_error):.2e} thresholds")
        if q.i_decay != DECAY_UNIT or q.v_decay != 0:
            what.append("decays round the state to Loihi's 1/64 grid every step")
        reasons.append(
            f"node {q.layer!r}: Loihi fixed point is not exact here ({'; '.join(what)}); lower without "
            "exact=True to deploy with this error (reported per layer), or use backend 'lava-float'"
        )
    return reasons


@dataclass
class LavaModel:
    """A chain lowered for Lava: the folded float chain, and for ``fixed_pt`` its quantisation."""

    chain: CubaChain
    tag: str
    quantisation: list[LayerQuantisation] = field(default_factory=list)

    @property
    def latency(self) -> int:
        """Steps the output lags the input: Loihi delivers each layer's spikes one step later."""
        return len(self.chain.layers)

    def report(self) -> str:
        """The per-layer quantisation table (empty for floating point)."""
        return "\n".join(q.row() for q in self.quantisation)


# -- netx HDF5 ------------------------------------------------------------------------------------

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


# -- running ---------------------------------------------------------------------------------------

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


def _run_process(net: Any, inp: Any, out: Any, data: np.ndarray, tag: str) -> np.ndarray:
    """Feed ``data`` into port ``inp`` and record port ``out`` for every step of one Lava run."""
    from snnx.lava_compat import import_lava

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
    from snnx.lava_compat import import_lava

    netx = import_lava("lava.lib.dl.netx")
    data, steps, batch = _stream(model, x)
    with tempfile.TemporaryDirectory(prefix="snnx-lava-") as tmp:
        path = os.path.join(tmp, "model.net")
        write_netx(model, path)
        # reset_offset=1: netx resets layer j at Lava time step (1 + j) mod T (time starts at 1),
        # i.e. on the step its window's first input arrives.
        net = netx.hdf5.Network(net_config=path, reset_interval=steps, reset_offset=1)
        out = _run_process(net, net.inp, net.out, data, "fixed_pt")
    return _unstream(model, out, steps, batch)


def run_float(model: LavaModel, x: np.ndarray) -> np.ndarray:
    """Run the chain as Lava ``Dense`` + ``LIFReset`` processes in floating point."""
    from snnx.lava_compat import import_lava

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
    out = _run_process(first, first.s_in, last.s_out, data, "floating_pt")
    return _unstream(model, out, steps, batch)


# -- backends --------------------------------------------------------------------------------------

class _LavaBackendBase(Backend):
    # Reset modes and initial state are checked by loihi_refusals, whose reasons say what Loihi does.
    capabilities = Capabilities(node_types=LAVA_NODE_TYPES, cycles=False, v_init=True)
    # find_spec only: importing Lava costs seconds, which `snnx info` must not pay per backend;
    # an install that is present but broken is reported when the backend is used (import_lava).
    install_hint = "snnx install lava"
    requires = ("lava.magma.core", "lava.lib.dl.netx")
    tag: ClassVar[str] = ""

    def _chain_refusals(self, graph: nir.NIRGraph) -> tuple[CubaChain | None, list[str]]:
        """The chain this backend deploys, or every reason it cannot (used by refusals and lower)."""
        chain, reasons = extract_chain(graph)
        if chain is None:
            return None, reasons
        reasons = loihi_refusals(chain)
        for layer in chain.layers:
            if layer.kind != "dense":
                reasons.append(
                    f"node {layer.nodes[0]!r}: only dense layers are deployed to Lava by snnx so far "
                    "(this Conv2d stays a convolution and would need netx's conv layer)"
                )
        return (None, reasons) if reasons else (chain, [])

    def refusals(self, graph: nir.NIRGraph) -> list[str]:
        """Node-type and cycle refusals plus every Loihi-specific reason, so one check lists them all."""
        reasons = super().refusals(graph)
        if self.missing_requirements():
            return reasons
        return reasons + [r for r in self._chain_refusals(graph)[1] if r not in reasons]

    def run(self, model: LavaModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chain = model.chain
        if set(inputs) != {chain.input}:
            msg = f"Lava model expects input {chain.input!r}, got {sorted(inputs)}"
            raise SnnxError(msg)
        x = np.asarray(inputs[chain.input], dtype=np.float64)
        y = run_fixed(model, x) if model.tag == "fixed_pt" else run_float(model, x)
        return {chain.output: y}


class LavaBackend(_LavaBackendBase):
    """netx HDF5 for Loihi 2, run on Lava's bit-accurate Loihi 2 simulation (``fixed_pt``)."""

    name = "lava"
    description = "Loihi 2: netx HDF5 network quantised by snnx, run bit-accurately by Lava (fixed_pt)"
    file_suffix = ".net"
    tag = "fixed_pt"
    #: Fixed point approximates the float contract by design: the quantisation is reported per layer,
    #: agreement with the reference is measured (``snnx check``), and spikes are equal only when every
    #: layer is exact (``lower(..., exact=True)`` insists on that). Conformance runs should treat
    #: this backend's disagreement as a measurement, not a failure.
    approximate: ClassVar[bool] = True

    def _chain_refusals(self, graph: nir.NIRGraph) -> tuple[CubaChain | None, list[str]]:
        chain, reasons = super()._chain_refusals(graph)
        if chain is not None and len(chain.layers[0].nodes) == 1:
            name = chain.layers[0].nodes[0]
            return None, [
                f"node {name!r} takes the graph input directly: on Loihi the input arrives as spikes "
                "through a synapse, so put an Affine/Linear before it (or use backend 'lava-float')"
            ]
        return chain, reasons

    def lower(self, graph: nir.NIRGraph, *, exact: bool | str = False, **options: Any) -> LavaModel:
        """Fold, quantise and return the model; ``save`` writes it as netx HDF5.

        The quantisation is reported per layer by ``model.report()`` (and ``snnx lower``).

        :param exact: refuse unless every layer's fixed-point form equals the contract bit for bit.
        :raises UnsupportedNodeError: ``exact`` and a layer is not exactly representable.
        """
        if options:
            msg = f"Backend 'lava' got unknown options {sorted(options)}; it takes exact"
            raise SnnxError(msg)
        chain = chain_or_raise(graph, self.name, self._chain_refusals)
        quant = [quantise_layer(layer) for layer in chain.layers]
        if _truthy(exact):
            reasons = quantisation_refusals(quant)
            if reasons:
                msg = "Backend 'lava' cannot take this graph exactly: " + "; ".join(reasons)
                raise UnsupportedNodeError(msg)
        return LavaModel(chain=chain, tag=self.tag, quantisation=quant)

    def save(self, model: LavaModel, path: str) -> None:
        from snnx.ir.io import write_atomic

        write_atomic(path, lambda tmp: write_netx(model, tmp))

    def describe(self, model: LavaModel) -> str:
        return (
            f"netx network, {len(model.chain.layers)} dense CUBA layers, latency {model.latency} steps, "
            f"run with Loihi2SimCfg(select_tag='fixed_pt'); quantisation per layer:\n{model.report()}"
        )


class LavaFloatBackend(_LavaBackendBase):
    """The same chain as Lava ``Dense``/``LIFReset`` processes, run in floating point."""

    name = "lava-float"
    description = "Lava processes (Dense + LIF) in floating point (Loihi2SimCfg floating_pt)"
    file_suffix = ".pkl"
    tag = "floating_pt"

    def lower(self, graph: nir.NIRGraph, **options: Any) -> LavaModel:
        if options:
            msg = f"Backend 'lava-float' got unknown options {sorted(options)}; it takes none"
            raise SnnxError(msg)
        return LavaModel(chain=chain_or_raise(graph, self.name, self._chain_refusals), tag=self.tag)

    def describe(self, model: LavaModel) -> str:
        return (
            f"Lava Dense + LIFReset processes, {len(model.chain.layers)} layers, latency {model.latency} "
            "steps, run with Loihi2SimCfg(select_tag='floating_pt')"
        )


def _truthy(value: Any) -> bool:
    """``exact`` as a bool; it may arrive as text (``-O exact=yes``, a config file)."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@hookimpl
def snnx_register_backends(register) -> None:  # noqa: ANN001 - BackendRegistrar
    register(LavaBackend())
    register(LavaFloatBackend())


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx install lava`` (creating the ``install`` group if no other plugin did)."""
    import click

    from snnx import lava_compat

    group = cli.commands.get("install")
    if group is None:

        @cli.group("install")
        def install_group() -> None:
            """Install optional heavy dependencies that need special handling."""

        group = install_group
    if not isinstance(group, click.Group):
        # Another plugin owns a plain `install` command; stay reachable without shadowing it.
        group, name = cli, "install-lava"
    else:
        name = "lava"

    @group.command(name)
    @click.option("--force", is_flag=True, help="Reinstall even if Lava already imports.")
    def install_lava(force: bool) -> None:
        """Install lava-nc 0.10 and lava-dl 0.6 into this Python (idempotent).

        They declare Python < 3.11 and old pins, so they are installed with --no-deps
        --ignore-requires-python plus the runtime dependencies their imports need; snnx patches
        their one Python 3.11 incompatibility at import time.
        """
        try:
            lava_compat.install_lava(force=force, echo=click.echo)
        except SnnxError as exc:
            raise click.ClickException(str(exc)) from exc
