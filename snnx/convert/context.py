"""The state an op handler works on: signals, constants, shapes and the NIR graph being built.

A *signal* stands for one ONNX tensor in the spiking network. The SNN cannot reproduce ANN values
directly, so a signal is a weighted sum of NIR node outputs, ``value ≈ Σ coef_i · out(node_i)``, read
as a rate (per step). Linear ops keep the coefficients; IF neurons set them from calibration;
residual additions just concatenate term lists, which is why they are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import onnx
from onnx import helper

from snnx.errors import ConversionError
from snnx.ir.semantics import set_node_contract

#: Node types whose weights can absorb a scalar factor on their output.
WEIGHTED = (nir.Conv2d, nir.Affine, nir.Linear)
#: Bias-free, positively homogeneous nodes a scalar factor commutes with.
PASS_THROUGH = (nir.Flatten, nir.AvgPool2d, nir.SumPool2d)

#: Membrane state before the first step, as a fraction of the threshold: rounding instead of flooring
#: the rate (Rueckauer et al. 2017 use the same trick to halve the quantisation error).
V_INIT_FRACTION = 0.5


@dataclass(frozen=True)
class Signal:
    """An ONNX tensor as a weighted sum of NIR node outputs (per sample, per step).

    :param terms: ``(node_name, coef)`` pairs; the ANN value is ``Σ coef · out(node)``.
    :param shape: per-sample shape (no batch dimension).
    :param nonneg: the value is known to be >= 0 (it comes from a ReLU).
    """

    terms: tuple[tuple[str, float], ...]
    shape: tuple[int, ...]
    nonneg: bool = False

    @property
    def scale(self) -> float:
        """A representative coefficient: what a consumer divides by to get unit-scale inputs."""
        return self.terms[0][1]

    def scaled(self, factor: float) -> Signal:
        """The signal times a scalar (no node needed: only the coefficients change)."""
        return Signal(tuple((n, c * factor) for n, c in self.terms), self.shape, self.nonneg and factor >= 0)

    def plus(self, other: Signal) -> Signal:
        """The sum of two signals of the same shape (fan-in sums in NIR, so no node is needed)."""
        merged: dict[str, float] = {}
        for name, coef in (*self.terms, *other.terms):
            merged[name] = merged.get(name, 0.0) + coef
        terms = tuple((n, c) for n, c in merged.items() if c != 0.0)
        if not terms:
            msg = "the two operands cancel exactly; the sum is identically zero"
            raise ConversionError(msg)
        return Signal(terms, self.shape, self.nonneg and other.nonneg)


@dataclass
class LayerInfo:
    """A group of IF populations that stands for one ONNX activation (for summaries and spike counts)."""

    onnx_node: str
    op_type: str
    neurons: list[str]
    shape: tuple[int, ...]
    scale: float | None = None


def sanitize(name: str) -> str:
    """A NIR node name: dots would mean nesting (``outer.inner``), slashes are awkward in HDF5."""
    clean = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return clean or "node"


@dataclass
class ConversionContext:
    """Everything a handler reads and writes while one ONNX graph is translated.

    :param constants: constant tensors by name (initializers and folded subgraphs).
    :param shapes: full ONNX shapes (with batch) of every non-constant tensor.
    :param scales: calibrated activation scale λ by tensor name (for handlers with ``calibrate``).
    :param opset: the model's default-domain opset.
    """

    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    scales: dict[str, float]
    opset: int
    #: Names of the ONNX graph outputs (a final Softmax may only be dropped there).
    graph_outputs: frozenset[str] = frozenset()
    #: How many ONNX nodes read each tensor (a bias may only be folded into a single-use producer).
    uses: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, nir.NIRNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    signals: dict[str, Signal] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    layers: list[LayerInfo] = field(default_factory=list)
    #: Scale nodes inserted by :meth:`feed`, with their (uniform) factor, for the folding pass.
    uniform_scales: dict[str, float] = field(default_factory=dict)
    current: onnx.NodeProto | None = None
    #: The ONNX op type each NIR node was made for (``--finetune`` trains only Conv/Gemm/MatMul weights).
    origin: dict[str, str] = field(default_factory=dict)
    #: Per-channel λ (``--steps``) by tensor: the IF gets per-channel thresholds λ_c/λ and a per-channel
    #: Scale after it, which :func:`snnx.convert.emit.fold_channel_scales` moves into the consumer.
    channel_scales: dict[str, np.ndarray] = field(default_factory=dict)
    #: Per-channel Scale nodes inserted for ``channel_scales``, with their per-channel factor.
    channel_scale_nodes: dict[str, np.ndarray] = field(default_factory=dict)
    #: Emit signed IF neurons (``snnx.signed``: -1 spikes take back over-firing; contract version 2).
    signed: bool = False

    # -- reading the ONNX side --------------------------------------------------------------------
    def describe(self, node: onnx.NodeProto | None = None) -> str:
        """``ONNX node 'name' (Op)`` for ``node`` (default: the node being translated), for messages."""
        node = node or self.current
        if node is None:
            return "the model"
        return f"ONNX node {node.name or node.output[0]!r} ({node.op_type})"

    def fail(self, message: str) -> ConversionError:
        """A :class:`ConversionError` prefixed with the node being translated (raise it)."""
        return ConversionError(f"{self.describe()}: {message}")

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as Python values (bytes decoded)."""
        out = {}
        for attr in node.attribute:
            value = helper.get_attribute_value(attr)
            out[attr.name] = value.decode() if isinstance(value, bytes) else value
        return out

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor, or None when it is computed from the input."""
        if not tensor:
            return None
        return self.constants.get(tensor)

    def require_constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        """Input ``index`` of ``node`` as a constant, or a clear error naming ``what`` it is."""
        if index >= len(node.input) or not node.input[index]:
            msg = f"has no {what} input"
            raise self.fail(msg)
        value = self.constant(node.input[index])
        if value is None:
            msg = (
                f"its {what} ({node.input[index]!r}) is computed at run time; snnx convert needs it "
                "constant (an initializer) because it becomes a synaptic weight"
            )
            raise self.fail(msg)
        return value

    def shape(self, tensor: str) -> tuple[int, ...]:
        """Per-sample shape of a tensor (the ONNX shape without its batch dimension)."""
        full = self.shapes.get(tensor)
        if full is None:
            msg = f"shape inference could not determine the shape of {tensor!r}; pass --input-shape"
            raise self.fail(msg)
        return tuple(full[1:])

    def signal(self, tensor: str) -> Signal:
        """The signal carrying ``tensor``; constants are refused (they are not time-varying inputs)."""
        if tensor in self.signals:
            return self.signals[tensor]
        if tensor in self.constants:
            msg = (
                f"input {tensor!r} is a constant where a data-dependent tensor is expected; "
                "this pattern has no spiking equivalent"
            )
            raise self.fail(msg)
        msg = f"input {tensor!r} was not produced by any translated node"
        raise self.fail(msg)

    def set_signal(self, tensor: str, signal: Signal) -> None:
        """Record the signal that carries ONNX tensor ``tensor`` from now on."""
        self.signals[tensor] = signal

    def activation_scale(self, tensor: str) -> float:
        """The calibrated scale λ of ``tensor``: the value a firing rate of 1 spike/step stands for."""
        if tensor not in self.scales:
            msg = f"no calibration scale for {tensor!r}; was the handler registered with calibrate=True?"
            raise self.fail(msg)
        return self.scales[tensor]

    def note(self, message: str) -> None:
        """Add a note for the conversion summary (each distinct message once)."""
        if message not in self.notes:
            self.notes.append(message)

    # -- building the NIR side --------------------------------------------------------------------
    def add_node(self, hint: str, node: nir.NIRNode) -> str:
        """Add ``node`` under a unique name derived from ``hint`` and return that name."""
        base = sanitize(hint)
        name, i = base, 1
        while name in self.nodes:
            i += 1
            name = f"{base}_{i}"
        self.nodes[name] = node
        if self.current is not None:
            self.origin[name] = self.current.op_type
        return name

    def connect(self, src: str, dst: str) -> None:
        """Add the NIR edge ``src → dst``."""
        self.edges.append((src, dst))

    def _foldable(self, name: str) -> bool:
        """Whether a scalar on this node's output could be folded into weights upstream."""
        seen = 0
        while seen < 64:
            node = self.nodes[name]
            if isinstance(node, WEIGHTED):
                return True
            if not isinstance(node, PASS_THROUGH):
                return False
            preds = [s for s, d in self.edges if d == name]
            if len(preds) != 1:
                return False
            name, seen = preds[0], seen + 1
        return False

    def feed(self, parts: list[tuple[Signal, float]], target: str, *, absorb: bool = False) -> float:
        """Connect ``Σ factor · signal`` into node ``target``.

        Every term whose overall factor is not 1 goes through a ``Scale`` node (later folded into the
        weights of its source where possible). With ``absorb`` the target is a neuron whose ``r`` can
        take one common factor: it is chosen from terms that cannot be folded (spike trains), so that
        skip connections need no Scale node at all.

        :returns: the factor left for the target to apply (1.0 unless ``absorb``).
        """
        factors: dict[str, float] = {}
        for signal, factor in parts:
            for name, coef in signal.terms:
                factors[name] = factors.get(name, 0.0) + coef * factor
        factors = {n: f for n, f in factors.items() if f != 0.0}
        if not factors:
            msg = "all inputs cancel; the layer would receive no input"
            raise self.fail(msg)
        common = 1.0
        if absorb:
            fixed = [f for n, f in factors.items() if not self._foldable(n)]
            if fixed:
                common = fixed[0]
        for i, (name, f) in enumerate(factors.items()):
            rel = f / common
            if np.isclose(rel, 1.0, rtol=1e-12, atol=0.0):
                self.connect(name, target)
                continue
            shape = parts[0][0].shape
            scale = self.add_node(f"{target}_in{i}", nir.Scale(scale=np.full(shape, rel)))
            self.uniform_scales[scale] = rel
            self.connect(name, scale)
            self.connect(scale, target)
        return common

    def linear(
        self, hint: str, signal: Signal, make: Any, out_shape: tuple[int, ...], *, nonneg: bool = False
    ) -> Signal:
        """Add a weighted/linear node fed by ``signal``; ``make(bias_factor)`` builds it.

        The node sees its input divided by ``λ = signal.scale`` and adds ``bias / λ``, so its output
        times λ is the ANN value: the weights stay the ANN's own.

        :param nonneg: the node maps non-negative inputs to non-negative outputs (pools, padding, a
            non-negative scale) and ``signal`` is non-negative, so the output is too.
        """
        lam = signal.scale
        name = self.add_node(hint, make(1.0 / lam))
        self.feed([(signal, 1.0 / lam)], name)
        return Signal(((name, lam),), out_shape, nonneg)

    def spiking(
        self, hint: str, parts: list[tuple[Signal, float]], shape: tuple[int, ...], *, threshold: Any = 1.0
    ) -> str:
        """Add an IF population (reset "subtract", ``v_init`` = half threshold) fed by ``parts``.

        :param threshold: a scalar, or an array broadcasting to ``shape`` (per-channel thresholds).
        """
        given = np.asarray(threshold, dtype=np.float64)
        placeholder = nir.IF(
            r=np.ones(shape), v_threshold=np.broadcast_to(given, shape).copy(), v_reset=np.zeros(shape)
        )
        # v_init as given: one number for a uniform threshold, per channel otherwise.
        threshold = float(given) if given.ndim == 0 else given
        name = self.add_node(hint, placeholder)
        common = self.feed(parts, name, absorb=True)
        placeholder.r = np.full(shape, common)
        set_node_contract(
            placeholder, reset="subtract", v_init=V_INIT_FRACTION * threshold, signed=self.signed or None
        )
        return name
