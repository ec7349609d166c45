"""The ``snntorch`` backend: NIR graphs as torch modules of snnTorch neurons.

``snnx.lower(graph, to="snntorch")`` returns a :class:`snnx.torch.graph.GraphModule` whose neurons are
:class:`snntorch.Leaky` / :class:`snntorch.Synaptic` (wrapped by :mod:`snnx.plugins.snntorch.neurons`,
their parameters folded by :mod:`snnx.plugins.snntorch.fold`) and whose layers are standard torch
layers, so it trains with snnTorch's surrogate gradients. The parameter tables and what is refused are
in ``specs/backends/snntorch.md``.

torch and snnTorch are imported inside the methods, so ``snnx --help`` works without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.capabilities import Capabilities
from snnx.plugins.snntorch.fold import node_refusals
from snnx.torch.backend import TORCH_NODE_TYPES, TorchGraphBackend, torch_dtype

if TYPE_CHECKING:  # pragma: no cover
    import nir

    from snnx.ir.prepare import PreparedGraph
    from snnx.torch.graph import GraphModule


class SnnTorchBackend(TorchGraphBackend):
    """Lower to snnTorch ``Leaky``/``Synaptic`` neurons, spike for spike equal to the reference."""

    name = "snntorch"
    description = "snnTorch Leaky/Synaptic neurons + torch layers (train with snnTorch surrogate gradients)"
    capabilities = Capabilities(node_types=TORCH_NODE_TYPES, cycles=True, v_init=True, signed_spikes=True)
    requires = ("torch", "snntorch")
    file_suffix = ".pt"

    def node_refusals(self, name: str, node: nir.NIRNode, dt: float) -> list[str]:
        """snnTorch's parameter limits (``beta`` in [0, 1]) and 2-D dense weights (:func:`.fold.node_refusals`)."""
        return node_refusals(name, node, dt)

    def lower(
        self,
        graph: PreparedGraph,
        spike_grad: str | Callable[[Any], Any] | None = None,
        dtype: Any = "float32",
        **options: Any,
    ) -> GraphModule:
        """Build the module.

        :param graph: the prepared graph (as :func:`snnx.lower` passes it); its ``dt`` is the time step.
        :param spike_grad: the surrogate for every neuron: a name in ``snntorch.surrogate`` (default
            ``"atan"``) or a callable whose forward pass is ``(x > 0)``. Names keep the module picklable.
        :param dtype: ``"float32"`` (default) or ``"float64"`` (or a torch dtype); float64 holds the
            graph's parameters exactly.
        """
        if options:
            msg = f"backend 'snntorch' got unknown options {sorted(options)}; it takes spike_grad and dtype"
            raise SnnxError(msg)
        from snnx.plugins.snntorch.neurons import make_surrogate, neuron_factory
        from snnx.torch.graph import build_graph_module

        factory = neuron_factory(make_surrogate(spike_grad))
        return build_graph_module(graph, factory, backend=self.name, dtype=torch_dtype(dtype, self.name))

    def save(self, model: Any, path: str) -> None:
        """``torch.save`` the whole module atomically; ``torch.load(path, weights_only=False)`` restores it."""
        import pickle

        from snnx.plugins.snntorch.neurons import clear_snntorch_state

        self._check_model(model)
        clear_snntorch_state(model)
        try:
            super().save(model, path)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            msg = (
                f"cannot save the snntorch model to '{path}': {exc}. A spike_grad given as a function "
                "cannot be pickled; lower with spike_grad='atan' (or another snntorch.surrogate name)"
            )
            raise SnnxError(msg) from exc


@hookimpl
def snnx_register_backends(register) -> None:
    register(SnnTorchBackend())
