"""The ``spikingjelly`` backend: NIR graphs lowered to SpikingJelly neurons, spike for spike equal to the contract.

Neurons: ``IF`` → ``IFNode``, ``LIF`` → ``LIFNode`` (both ``step_mode="m"``), ``LI`` →
``NonSpikingLIFNode``, ``I`` → ``NonSpikingIFNode``, ``CubaLIF``/``CubaLI`` → a ``NonSpikingLIFNode``
current followed by ``LIFNode``/``NonSpikingLIFNode``. Layers, fan-in, delays and cycles come from the
shared executor :mod:`snnx.torch.graph`; the neurons are in :mod:`snnx.plugins.spikingjelly.neurons`
(imported inside :meth:`SpikingJellyBackend.lower`), the refusals in :mod:`snnx.plugins.spikingjelly.fold`.
The folds and the refusals: ``specs/backends/spikingjelly.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.capabilities import Capabilities
from snnx.plugins.spikingjelly.fold import NAME, node_refusals
from snnx.torch.backend import TORCH_NODE_TYPES, TorchGraphBackend, torch_dtype

if TYPE_CHECKING:  # pragma: no cover
    import nir

    from snnx.ir.prepare import PreparedGraph
    from snnx.torch.graph import GraphModule


class SpikingJellyBackend(TorchGraphBackend):
    """Lower to a :class:`~snnx.torch.graph.GraphModule` of SpikingJelly neurons (multi-step mode)."""

    name = NAME
    description = "SpikingJelly IFNode/LIFNode (step_mode='m') and non-spiking nodes in a torch module"
    capabilities = Capabilities(node_types=TORCH_NODE_TYPES, cycles=True, v_init=True, signed_spikes=True)
    requires = ("torch", "spikingjelly")

    def node_refusals(self, name: str, node: nir.NIRNode, dt: float) -> list[str]:
        """The ``tau/dt > 1`` domain of SpikingJelly's ``LIFNode`` (:func:`.fold.node_refusals`)."""
        return node_refusals(name, node, dt)

    def lower(self, graph: PreparedGraph, surrogate: Any = None, dtype: Any = "float32",
              **options: Any) -> GraphModule:
        """Build the module.

        :param graph: the prepared graph (as :func:`snnx.lower` passes it); its ``dt`` is the time step.
        :param surrogate: a SpikingJelly surrogate module (``surrogate.ATan()``, ...) for the gradients;
            default ``surrogate.Sigmoid()``. The forward pass is the strict step whatever the choice.
        :param dtype: ``"float32"`` (default) or ``"float64"``; float64 holds the graph's parameters exactly.
        """
        from snnx.plugins.spikingjelly.neurons import check_surrogate, neuron_factory
        from snnx.torch.graph import build_graph_module

        if options:
            msg = f"Backend {NAME!r} got unknown options {sorted(options)}; it takes surrogate= and dtype="
            raise SnnxError(msg)
        check_surrogate(surrogate)
        return build_graph_module(
            graph, neuron_factory(surrogate), backend=self.name, dtype=torch_dtype(dtype, self.name)
        )


@hookimpl
def snnx_register_backends(register) -> None:
    register(SpikingJellyBackend())
