"""The three Loihi backends: ``lava-dl`` (SLAYER, float), ``lava-float`` (Lava processes, floating_pt) and
``lava`` (netx for Loihi 2, Lava's bit-accurate fixed_pt).

All three fold the contract into Loihi's CUBA neuron (:mod:`snnx.plugins.loihi.cuba`); ``lava``
quantises the folded chain (:mod:`snnx.plugins.loihi.quantise`) and writes it as netx HDF5
(:mod:`snnx.plugins.loihi.netx`); the Lava runs are :mod:`snnx.plugins.loihi.runner`'s, the SLAYER
network :mod:`snnx.plugins.loihi.slayer`'s. No Lava or torch import at module level.
See ``specs/backends/lava.md`` and ``specs/backends/lava-dl.md``.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import nir
import numpy as np

from snnx.errors import SnnxError, UnsupportedNodeError
from snnx.ir.capabilities import Capabilities
from snnx.ir.prepare import PreparedGraph
from snnx.plugins.loihi import populations, precision, pulsechain, runner, slayer, subtract
from snnx.plugins.loihi.cuba import (
    CHAIN_NODE_TYPES,
    THRESHOLD_CHAIN_NODE_TYPES,
    CubaChain,
    chain_or_raise,
    extract_chain,
    initial_state_pulses,
    loihi_refusals,
)
from snnx.plugins.loihi.export import chain_to_nir
from snnx.plugins.loihi.layering import layer_graph
from snnx.plugins.loihi.model import LavaModel
from snnx.plugins.loihi.netx import write_netx
from snnx.plugins.loihi.precision import unrolled
from snnx.plugins.loihi.quantise import SYNAPSE_BITS, activation_refusals, quantisation_refusals, quantise_layer
from snnx.registry import Backend

#: find_spec only: importing Lava costs seconds, which `snnx info` must not pay per backend;
#: an install that is present but broken is reported when the backend is used (import_lava).
INSTALL_HINT = "snnx install lava"


class _LavaBackendBase(Backend):
    install_hint = INSTALL_HINT
    requires = ("lava.magma.core", "lava.lib.dl.netx")
    tag: ClassVar[str] = ""

    def _chain_refusals(self, graph: PreparedGraph) -> tuple[CubaChain | None, list[str]]:
        """The chain this backend deploys, or every reason it cannot (used by refusals and lower)."""
        raise NotImplementedError

    def _fold(self, graph: PreparedGraph, **options: Any) -> tuple[CubaChain | None, list[str]]:
        """``extract_chain`` of the graph made a chain of layers (:mod:`snnx.plugins.loihi.layering`)."""
        layered, reasons = layer_graph(graph)
        if layered is None:
            return None, reasons
        # An unchanged graph keeps its preparation: validating it again would only repeat the work.
        chain, reasons = extract_chain(layered.graph if layered.changed else graph, **options)
        if chain is not None and layered.changed:
            # A merged last layer is flat; the graph's output keeps its own shape.
            last = chain.layers[-1]
            shape = tuple(int(d) for d in graph.shapes[chain.output])
            if last.kind == "dense" and int(np.prod(shape)) == int(np.prod(last.out_shape)):
                last.out_shape = shape
        return chain, reasons

    def refusals(self, graph: PreparedGraph) -> list[str]:
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
        if model.tag != "fixed_pt":
            y = runner.run_float(model, x)
        elif model.populations:
            y = populations.run_fixed_populations(model, x)
        else:
            y = runner.run_fixed(model, x)
        return {chain.output: y}


def atrlif_refusals(pops: list[list[populations.Population]]) -> list[str]:
    """Why the ATRLIF (reset "subtract") populations of a chain, layer ``j`` of which waits ``j`` steps for
    its first input, cannot run exactly (:mod:`snnx.plugins.loihi.subtract`)."""
    reasons = []
    for j, layer_pops in enumerate(pops, start=1):
        later = [p.layer.nodes[-1] for pops_k in pops[j:] for p in pops_k if subtract.is_subtract(p.layer)]
        for p in layer_pops:
            if subtract.is_subtract(p.layer):
                whys = (subtract.fill_refusal(p.quantisation, j),)
            elif later and p.layer.spiking:
                whys = (subtract.early_spike_refusal(p.quantisation, j, later[0]),)
            else:
                whys = ()
            reasons += [why for why in whys if why]
    return reasons


class LavaBackend(_LavaBackendBase):
    """netx HDF5 for Loihi 2, run on Lava's bit-accurate Loihi 2 simulation (``fixed_pt``)."""

    name = "lava"
    description = "Loihi 2: netx HDF5 network quantised by snnx, run bit-accurately by Lava (fixed_pt)"
    # Reset modes and initial state are checked by loihi_refusals, whose reasons say what Loihi does.
    # Cycles: a spiking layer's own spikes fed back through stateless nodes (extract_chain decides).
    capabilities = Capabilities(node_types=THRESHOLD_CHAIN_NODE_TYPES, cycles=True, v_init=True)
    file_suffix = ".net"
    tag = "fixed_pt"
    #: Fixed point approximates the float contract by design: the quantisation is reported per layer,
    #: agreement with the reference is measured (``snnx check``), and spikes are equal only when every
    #: layer is exact (``lower(..., exact=True)`` insists on that). Conformance runs should treat
    #: this backend's disagreement as a measurement, not a failure.
    approximate: ClassVar[bool] = True

    def _chain_refusals(self, graph: PreparedGraph) -> tuple[CubaChain | None, list[str]]:
        # Decays that differ between neurons are split into one Loihi population per decay, and a layer's own
        # spikes fed back become a recurrent synapse (populations.py).
        chain, reasons = self._fold(
            graph, readout=True, shift_reset=True, shared_decays=False, recurrent=True, threshold=True
        )
        if chain is None:
            return None, reasons
        chain = initial_state_pulses(chain)
        reasons = loihi_refusals(chain, subtract=subtract.layer_refusals) + populations.population_refusals(chain)
        return (None, reasons) if reasons else (chain, [])

    def lower(
        self, graph: PreparedGraph, *, exact: bool | str = False, weight_bits: Any = SYNAPSE_BITS, **options: Any,
    ) -> LavaModel:
        """Fold, quantise and return the model; ``save`` writes it as netx HDF5.

        The quantisation is reported per layer by ``model.report()`` (and ``snnx lower``).

        :param exact: refuse unless every layer's fixed-point form equals the contract bit for bit.
        :param weight_bits: 8 (Loihi's 8-bit synapse, the netx network) to 16: more bits are deployed as two
            8-bit synapses per connection (:mod:`snnx.plugins.loihi.precision`), run as Lava processes
            (convolutions unrolled to ``Dense``) and not savable as netx. One number for every layer, or a
            mapping from layer name to bits with ``"*"`` for the others.
        :raises UnsupportedNodeError: ``exact`` and a layer is not exactly representable, or a split
            layer's worst-case per-step input does not fit Loihi's 16-bit activation.
        """
        if options:
            msg = f"Backend 'lava' got unknown options {sorted(options)}; it takes exact, weight_bits"
            raise SnnxError(msg)
        chain = chain_or_raise(graph, self.name, self._chain_refusals)
        bits = precision.layer_bits(weight_bits, chain, graph.graph.nodes)
        split = any(b > SYNAPSE_BITS for b in bits)
        if split:
            chain = precision.with_split_layers(chain)
        if pulsechain.has_kicks(chain):
            chain = pulsechain.with_kick_columns(chain)
        elif any(subtract.is_subtract(layer) for layer in chain.layers):
            # ATRLIF populations are wired as Lava Dense processes: conv layers unrolled.
            chain = copy.copy(chain)
            chain.layers = [unrolled(layer) for layer in chain.layers]
        pops = populations.split_chain(chain, bits) if split or populations.needs_populations(chain) else []
        if pops:
            quant = [p.quantisation for layer in pops for p in layer]
        else:
            quant = [quantise_layer(layer) for layer in chain.layers]
        reasons = activation_refusals(quant)
        if reasons:
            msg = "Backend 'lava' cannot take these weight_bits: " + "; ".join(reasons)
            raise UnsupportedNodeError(msg)
        reasons = atrlif_refusals(pops)
        if reasons:
            msg = "Backend 'lava' cannot run this graph on Loihi 2's ATRLIF neuron: " + "; ".join(reasons)
            raise UnsupportedNodeError(msg)
        if _truthy(exact):
            reasons = quantisation_refusals(quant)
            if reasons:
                msg = "Backend 'lava' cannot take this graph exactly: " + "; ".join(reasons)
                raise UnsupportedNodeError(msg)
        return LavaModel(chain=chain, tag=self.tag, quantisation=[] if pops else quant, populations=pops)

    def save(self, model: LavaModel, path: str) -> None:
        from snnx.ir.io import write_atomic

        populations.check_savable(model)
        write_atomic(path, lambda tmp: write_netx(model, tmp))

    def describe(self, model: LavaModel) -> str:
        chain = model.chain
        kinds = ", ".join(f"{layer.kind}[{'x'.join(map(str, layer.data_shape))}]" for layer in chain.layers)
        notes = ""
        if chain.pulses:
            n = int(np.prod(chain.in_shape))
            at = chain.pulse_steps or tuple(range(chain.pulses))
            axons = " and ".join(f"{n + k} at step {step}" for k, step in enumerate(at))
            notes += f"; the first layer's initial state: spike input axon {axons} of every window"
        kicked = [layer.nodes[-1] for layer in chain.layers if layer.kick is not None]
        if kicked:
            notes += (
                f"; layers {kicked} start from their v_init through a parallel chain of pulse populations "
                f"({chain.kick_pulses} neurons each)"
            )
        last = [p.quantisation for p in model.populations[-1]] if model.populations else model.quantisation[-1:]
        if not chain.layers[-1].spiking:
            notes += (
                "; the last layer never fires: read its voltage (probe v, divide by "
                f"{', '.join(f'{q.scale * 64:.6g}' for q in last)})"
            )
        split = [len(p) for p in model.populations]
        two = [p.quantisation.layer for pops in model.populations for p in pops if p.quantisation.weight_exp]
        what = "netx network of CUBA layers" if not model.populations else (
            f"Lava Dense + {'ATRLIF (reset subtract) and ' if any(subtract.is_subtract(x) for x in chain.layers) else ''}"
            f"LIFReset processes (populations per layer: {split}, one per decay; recurrent "
            f"layers: {sum(layer.recurrent is not None for layer in chain.layers)}; "
            f"two 8-bit synapses per connection: {two or 'none'}; not a netx chain)"
        )
        return (
            f"{what} ({kinds}), latency {model.latency} steps{notes}; "
            f"run with Loihi2SimCfg(select_tag='fixed_pt'); quantisation per layer:\n{model.report()}"
        )


class LavaFloatBackend(_LavaBackendBase):
    """The chain as Lava processes (Dense/Conv synapses, LIFReset or snnx's contract CUBA neuron), floating point."""

    name = "lava-float"
    description = "Lava processes (Dense/Conv + LIF or snnx's contract CUBA neuron) in floating point (floating_pt)"
    # Cycles: a spiking layer's own spikes fed back through stateless nodes (extract_chain decides).
    capabilities = Capabilities(node_types=THRESHOLD_CHAIN_NODE_TYPES, cycles=True, v_init=True)
    file_suffix = ".pkl"
    tag = "floating_pt"

    def _chain_refusals(self, graph: PreparedGraph) -> tuple[CubaChain | None, list[str]]:
        return self._fold(graph, readout=True, shared_decays=False, recurrent=True, threshold=True)

    def lower(self, graph: PreparedGraph, **options: Any) -> LavaModel:
        if options:
            msg = f"Backend 'lava-float' got unknown options {sorted(options)}; it takes none"
            raise SnnxError(msg)
        return LavaModel(chain=chain_or_raise(graph, self.name, self._chain_refusals), tag=self.tag)

    def describe(self, model: LavaModel) -> str:
        layers = ", ".join(
            f"{'Conv' if layer.kind == 'conv' else 'Dense'}+"
            f"{'Readout' if layer.readout else 'LIFReset' if layer.standard else 'ContractCuba'}"
            for layer in model.chain.layers
        )
        return (
            f"Lava processes ({layers}), latency {model.latency} steps, "
            "run with Loihi2SimCfg(select_tag='floating_pt')"
        )


def _truthy(value: Any) -> bool:
    """``exact`` as a bool; it may arrive as text (``-O exact=yes``, a config file)."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)



class LavaDlBackend(Backend):
    """SLAYER (lava-dl) CUBA blocks, trainable on CPU with SLAYER's surrogate gradients."""

    name = "lava-dl"
    description = "lava-dl SLAYER CUBA blocks (Dense, Conv, Flatten); trains on CPU, exact float forward"
    capabilities = Capabilities(node_types=CHAIN_NODE_TYPES, cycles=False, v_init=True)
    install_hint = INSTALL_HINT
    requires = ("lava.magma.core", "lava.lib.dl.slayer", "torch")
    file_suffix = ".pt"

    def refusals(self, graph: PreparedGraph) -> list[str]:
        """Requirement, node-type and cycle refusals; when there are none, why the chain cannot be folded."""
        reasons = super().refusals(graph)
        if reasons:
            return reasons
        _chain, reasons = extract_chain(graph)
        return reasons

    def lower(
        self, graph: PreparedGraph, *, tau_grad: float = 1.0, scale_grad: float = 1.0, dtype: str = "float64",
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
        return slayer.network_class()(chain, tau_grad=tau_grad, scale_grad=scale_grad, dtype=dtype)

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

        slayer.slayer_module()  # unpickling imports SLAYER's blocks: import them patched and without banners first
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
