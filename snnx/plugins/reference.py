"""The ``reference`` backend: the numpy simulator of :mod:`snnx.ir.reference`, registered like any plugin."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.capabilities import ALL_NODE_TYPES, Capabilities
from snnx.ir.prepare import PreparedGraph, as_graph
from snnx.registry import Backend


@dataclass(frozen=True)
class ReferenceModel(PreparedGraph):
    """What ``lower(graph, to="reference")`` gives: the prepared graph itself, named as this backend's
    model (``snnx.raise_`` finds the backend from it), so :meth:`ReferenceBackend.run` does not validate,
    flatten and schedule the same graph a second time. ``.graph`` is the flat NIR graph."""

    snnx_backend: str = "reference"


class ReferenceBackend(Backend):
    """Float64 numpy execution of the snnx contract: the oracle every other backend is checked against."""

    name = "reference"
    description = "numpy float64 reference simulator (the contract's executable form)"
    capabilities = Capabilities(node_types=ALL_NODE_TYPES, cycles=True, signed_spikes=True)
    file_suffix = ".nir"

    def lower(self, graph: PreparedGraph, **options: Any) -> ReferenceModel:
        """The prepared graph itself (:class:`ReferenceModel`): the reference runs NIR directly."""
        if options:
            msg = f"backend 'reference' takes no options, got {sorted(options)}"
            raise SnnxError(msg)
        return ReferenceModel(**{f.name: getattr(graph, f.name) for f in fields(PreparedGraph)})

    def run(self, model: PreparedGraph | nir.NIRGraph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from snnx.ir.reference import simulate

        return simulate(model, inputs)

    def raise_(self, model: PreparedGraph | nir.NIRGraph) -> nir.NIRGraph:
        return as_graph(model)

    def save(self, model: PreparedGraph | nir.NIRGraph, path: str) -> None:
        from snnx.ir.io import save

        save(as_graph(model), path)

    def load(self, path: str) -> nir.NIRGraph:
        from snnx.ir.io import load

        return load(path)

    def describe(self, model: PreparedGraph | nir.NIRGraph) -> str:
        return f"NIR graph with {len(model.nodes)} nodes, run by the numpy reference simulator"


@hookimpl
def snnx_register_backends(register) -> None:
    register(ReferenceBackend())
