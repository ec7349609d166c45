"""The snnx plugin: registers the ``sinabs`` backend through the ``snnx`` entry-point group.

This module imports neither torch nor sinabs, so ``snnx plugins`` and ``snnx --help`` stay fast and work
where Sinabs is missing (the backend then reports itself unavailable with the install command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnx import Capabilities, SnnxError, hookimpl
from snnx.ir.semantics import i_init_of, reset_of, v_init_of
from snnx.torch.backend import EXECUTOR_KINDS, TorchGraphBackend
from snnx_sinabs.fold import NEURON_KINDS, FoldError, fold

if TYPE_CHECKING:  # pragma: no cover
    from snnx.ir.prepare import PreparedGraph
    from snnx.torch.graph import GraphModule

#: What the shared torch executor builds itself (its layers, Delay, Input/Output) plus the neurons Sinabs takes.
NODE_TYPES = EXECUTOR_KINDS | frozenset(NEURON_KINDS)


class SinabsBackend(TorchGraphBackend):
    """NIR graphs as :class:`snnx.torch.graph.GraphModule` whose neurons are Sinabs layers.

    The lowered model is a ``torch.nn.Module``: train it like any Sinabs model, then ``snnx.raise_`` it
    back to NIR. Parameter table and refusals: :mod:`snnx_sinabs.fold` and the package README.
    ``run``, ``raise_``, ``save``, ``load`` and ``describe`` come from snnx's public
    :class:`~snnx.torch.backend.TorchGraphBackend`, shared by every backend built on the torch executor.
    """

    name = "sinabs"
    description = "Sinabs (SynSense) IAF / ExpLeak / LIF layers, spike-exact (snnx-sinabs plugin)"
    capabilities = Capabilities(node_types=NODE_TYPES, cycles=True, v_init=True)
    requires = ("torch", "sinabs")
    install_hint = "pip install --no-deps 'sinabs>=3.1' (sinabs pins an old nir; see the snnx-sinabs README)"
    file_suffix = ".pt"

    def refusals(self, graph: PreparedGraph) -> list[str]:
        """The capability check, plus every neuron Sinabs cannot reproduce exactly (see ``fold``).

        :param graph: the prepared graph snnx passes (flat, validated, its time step in ``graph.dt``).
        """
        reasons = super().refusals(graph)
        if self.missing_requirements():
            return reasons
        dt = graph.dt
        for name, node in graph.nodes.items():
            kind = type(node).__name__
            if kind not in NEURON_KINDS:
                continue
            try:
                fold(kind, node, dt, reset_of(node), v_init_of(node), i_init_of(node))
            except FoldError as exc:
                reasons.append(f"node {name!r} ({kind}): {exc}")
        return reasons

    def lower(self, graph: PreparedGraph, **options: Any) -> GraphModule:
        """A :class:`snnx.torch.graph.GraphModule` of Sinabs neurons (float32, CPU).

        :param options: none are accepted yet; an unknown one is an error rather than ignored.
        """
        if options:
            msg = f"Backend 'sinabs' takes no lowering options, got {', '.join(sorted(options))}"
            raise SnnxError(msg)
        from snnx.torch.graph import build_graph_module
        from snnx_sinabs.neurons import neuron_factory

        try:
            return build_graph_module(graph, neuron_factory, backend=self.name)
        except FoldError as exc:  # refusals() catches these first; keep the message if lower is called directly
            msg = f"Backend 'sinabs' cannot lower this graph: {exc}"
            raise SnnxError(msg) from exc

@hookimpl
def snnx_register_backends(register: Any) -> None:
    """Register the ``sinabs`` backend."""
    register(SinabsBackend())
