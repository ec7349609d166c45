"""The models ``snnx bench`` uses: one NIR conv SNN for direct training, small ANNs for conversion.

The SNN is built by snnx as a NIR graph, so every backend starts from the same weights. Its default
architecture stays inside what every training backend takes exactly (lava-dl's CUBA chain has no pools
and needs a spiking last layer): ``Conv(stride 2)-LIF-Conv(stride 2)-LIF-Flatten-Affine-LIF``, classes read
from output spike counts. ``arch="pool"`` gives the classic ``Conv-LIF-SumPool-Conv-LIF-SumPool-Flatten-
Affine-LI`` with a membrane readout (lava-dl then refuses it, with its reasons in the table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.ir.semantics import set_graph_contract, set_node_contract

ARCHS = ("strided", "pool")


@dataclass(frozen=True)
class SnnSpec:
    """The direct-training SNN: two 3x3 conv layers and a dense readout.

    :param channels: output channels of the two conv layers.
    :param arch: ``"strided"`` (stride-2 convs, LIF readout, spike-count loss) or ``"pool"`` (2x2 sum
        pools, LI readout, membrane loss).
    :param dt: contract time step; ``tau = tau_steps * dt`` gives a decay of ``1/tau_steps`` per step.
    :param tau_steps: membrane time constant in steps.
    :param threshold: LIF threshold (``v_reset = v_leak = 0``).
    :param seed: weight initialisation seed.
    """

    channels: tuple[int, int] = (8, 16)
    arch: str = "strided"
    dt: float = 1e-3
    tau_steps: float = 2.0
    threshold: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        """The spec as a plain dict."""
        return asdict(self)

    @property
    def readout(self) -> str:
        """``"spikes"`` (classes from spike counts) or ``"membrane"`` (from the LI readout's mean v)."""
        return "spikes" if self.arch == "strided" else "membrane"


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    # He-uniform: with threshold 1 and a decay of 1/2, torch's default 1/sqrt(fan_in) bound leaves
    # the deeper layers nearly silent at the start, and no surrogate gradient flows through silence.
    bound = np.sqrt(6.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape)


def _lif(shape: tuple[int, ...], spec: SnnSpec) -> nir.LIF:
    # r = tau/dt makes v <- (1 - dt/tau) v + x: the input enters unscaled, as in snnTorch's Leaky.
    tau = spec.tau_steps * spec.dt
    node = nir.LIF(
        tau=np.full(shape, tau),
        r=np.full(shape, spec.tau_steps),
        v_leak=np.zeros(shape),
        v_threshold=np.full(shape, spec.threshold),
        v_reset=np.zeros(shape),
    )
    return set_node_contract(node, reset="value")


def _conv_out(n: int, stride: int) -> int:
    return (n + 2 - 3) // stride + 1


def build_snn(spec: SnnSpec, input_shape: tuple[int, ...], classes: int) -> nir.NIRGraph:
    """The NIR graph of the direct-training SNN for images of ``input_shape`` ``(C, H, W)``."""
    if spec.arch not in ARCHS:
        msg = f"unknown architecture {spec.arch!r}; choose from {', '.join(ARCHS)}"
        raise SnnxError(msg)
    rng = np.random.default_rng(spec.seed)
    c, h, w = input_shape
    c1, c2 = spec.channels
    stride = 2 if spec.arch == "strided" else 1
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(input_shape))}
    edges: list[tuple[str, str]] = []
    prev = "input"

    def add(name: str, node: nir.NIRNode) -> None:
        nonlocal prev
        nodes[name] = node
        edges.append((prev, name))
        prev = name

    shape = (c, h, w)
    for i, c_out in enumerate((c1, c2), start=1):
        fan_in = shape[0] * 9
        add(
            f"conv{i}",
            nir.Conv2d(
                input_shape=shape[1:],
                weight=_uniform(rng, (c_out, shape[0], 3, 3), fan_in),
                stride=stride,
                padding=1,
                dilation=1,
                groups=1,
                # Zero, not random: lava-dl (Loihi) refuses biases, and zero is a fine start for all.
                bias=np.zeros(c_out),
            ),
        )
        shape = (c_out, _conv_out(shape[1], stride), _conv_out(shape[2], stride))
        add(f"lif{i}", _lif(shape, spec))
        if spec.arch == "pool":
            add(f"pool{i}", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])))
            shape = (shape[0], shape[1] // 2, shape[2] // 2)
        if min(shape[1:]) < 1:
            msg = f"input {input_shape} is too small for the {spec.arch} architecture"
            raise SnnxError(msg)
    add("flatten", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1))
    features = int(np.prod(shape))
    add("fc", nir.Affine(weight=_uniform(rng, (classes, features), features), bias=np.zeros(classes)))
    if spec.readout == "spikes":
        add("lif_out", _lif((classes,), spec))
    else:
        tau = spec.tau_steps * spec.dt
        add("li_out", nir.LI(tau=np.full(classes, tau), r=np.full(classes, spec.tau_steps), v_leak=np.zeros(classes)))
    add("output", nir.Output(output_type=np.array([classes])))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return set_graph_contract(graph, dt=spec.dt)


# -- ANNs for the conversion track ----------------------------------------------------------------------
ANN_KINDS = ("mlp", "cnn")


def build_ann(kind: str, input_shape: tuple[int, ...], classes: int, seed: int):
    """A small ReLU network (torch) that the converter can take: ``mlp`` or ``cnn`` (avg pools)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    c, h, w = input_shape
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(c * h * w, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, classes)
        )
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(16 * (h // 4) * (w // 4), classes),
        )
    msg = f"unknown ANN {kind!r}; choose from {', '.join(ANN_KINDS)}"
    raise SnnxError(msg)
