"""What SpikingJelly can reproduce exactly (``specs/backends/spikingjelly.md``): numpy only, no torch.

The folds themselves (``τ_SJ = τ/dt``, the input scale and the leak bias) are a line each and live with
the neurons in :mod:`snnx.plugins.spikingjelly.neurons`; this module holds what the backend refuses
before lowering, so that :mod:`snnx.plugins.spikingjelly.plugin` can check a graph without torch.
"""

from __future__ import annotations

import nir
import numpy as np

from snnx.ir.nodes import find_kind
from snnx.ir.semantics import signed_of
from snnx.torch.params import f64

NAME = "spikingjelly"

#: The membrane time constant of the nodes that become a ``LIFNode``, which asserts ``tau > 1`` (in steps).
LIFNODE_TAU = {"LIF": "tau", "CubaLIF": "tau_mem"}

#: SpikingJelly surrogates whose spiking forward pass is ``heaviside(x) = (x >= 0)`` (read from
#: ``spikingjelly/activation_based/surrogate.py``); the others sample (PoissonPass) or count levels.
HEAVISIDE_SURROGATES = frozenset({
    "PiecewiseQuadratic", "PiecewiseExp", "Sigmoid", "SoftSign", "SuperSpike", "ATan", "NonzeroSignLogAbs",
    "Erf", "PiecewiseLeakyReLU", "SquarewaveFourierSeries", "S2NN", "QPseudoSpike", "LeakyKReLU",
    "FakeNumericalGradient", "LogTailedReLU", "DeterministicPass", "Rect",
})


def node_refusals(name: str, node: nir.NIRNode, dt: float) -> list[str]:
    """Why SpikingJelly cannot reproduce neuron ``node`` exactly at time step ``dt``; empty when it can."""
    kind = find_kind(node)
    reasons = []
    # A signed node charges through NonSpikingLIFNode (as LI does), which has no tau > 1 limit.
    if kind is not None and kind.name in LIFNODE_TAU and not signed_of(node):
        key = LIFNODE_TAU[kind.name]
        tau = f64(getattr(node, key))
        if tau.size and not np.all(tau / dt > 1.0):
            reasons.append(
                f"node {name!r} ({kind.name}): SpikingJelly's LIFNode needs tau/dt > 1 (tau in steps), got "
                f"{key}={tau.min():g} with dt={dt:g}; lower with a smaller dt or use another backend"
            )
    return reasons
