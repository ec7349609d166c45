"""The ``norse`` backend: NIR graphs lowered to Norse's own cells, spike for spike equal to the contract.

Neurons: ``LIF`` → ``LIFBoxCell``, ``IF`` → ``IAFCell``, ``LI`` → ``LIBoxCell``, ``CubaLIF`` →
``LIFCell``, ``CubaLI`` → ``LICell`` (``I`` is a plain torch running sum: Norse has no integrator).
Layers, fan-in, delays and cycles come from the shared executor :mod:`snnx.torch.graph`; the cells are
wrapped in :mod:`snnx.plugins.norse.neurons` (imported inside :meth:`NorseBackend.lower`).
The parameter table and its derivation: ``specs/backends/norse.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.capabilities import Capabilities
from snnx.plugins.norse.fold import DEFAULT_ALPHA, DEFAULT_METHOD, DETERMINISTIC_METHODS
from snnx.torch.backend import TORCH_NODE_TYPES, TorchGraphBackend, torch_dtype

if TYPE_CHECKING:  # pragma: no cover
    from snnx.ir.prepare import PreparedGraph
    from snnx.torch.graph import GraphModule


class NorseBackend(TorchGraphBackend):
    """Lower to a :class:`~snnx.torch.graph.GraphModule` of Norse cells (trainable with Norse's surrogates)."""

    name = "norse"
    description = "Norse cells (LIFBoxCell, IAFCell, LIBoxCell, LIFCell, LICell) in a torch module"
    # Norse's cells take per-neuron tensors for every parameter and an explicit state, so every
    # node type, both reset modes, v_init/i_init and (through the executor) cycles are exact.
    capabilities = Capabilities(node_types=TORCH_NODE_TYPES, cycles=True, v_init=True, signed_spikes=True)
    requires = ("torch", "norse")

    def lower(self, graph: PreparedGraph, method: str = DEFAULT_METHOD, alpha: float = DEFAULT_ALPHA,
              dtype: Any = "float32", **options: Any) -> GraphModule:
        """Build the module.

        :param graph: the prepared graph (as :func:`snnx.lower` passes it); its ``dt`` is the time step.
        :param method: Norse's spike function for the surrogate gradient (``"super"``, ``"triangle"``,
            ``"tanh"``, ...); the forward pass is the strict step whatever the choice.
        :param alpha: the surrogate's sharpness.
        :param dtype: ``"float32"`` (default) or ``"float64"``; float64 holds the graph's parameters exactly.
        """
        from snnx.plugins.norse.neurons import neuron_factory
        from snnx.torch.graph import build_graph_module

        if method not in DETERMINISTIC_METHODS:
            msg = (
                f"Backend 'norse': method={method!r} is not one of {sorted(DETERMINISTIC_METHODS)}; the "
                "others sample spikes at random ('logistic') or change LIFCell's integration ('adjoint')"
            )
            raise SnnxError(msg)
        if options:
            msg = f"Backend 'norse' got unknown options {sorted(options)}; it takes method=, alpha= and dtype="
            raise SnnxError(msg)
        return build_graph_module(
            graph, neuron_factory(method=method, alpha=alpha), backend=self.name,
            dtype=torch_dtype(dtype, self.name),
        )


@hookimpl
def snnx_register_backends(register) -> None:
    register(NorseBackend())
