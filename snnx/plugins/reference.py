"""The ``reference`` backend: the numpy simulator of :mod:`snnx.ir.reference`, registered like any plugin."""

from __future__ import annotations

from typing import Any

import nir
import numpy as np

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.capabilities import ALL_NODE_TYPES, Capabilities
from snnx.ir.prepare import PreparedGraph
from snnx.registry import Backend


class ReferenceBackend(Backend):
    """Float64 numpy execution of the snnx contract: the oracle every other backend is checked against."""

    name = "reference"
    description = "numpy float64 reference simulator (the contract's executable form)"
    capabilities = Capabilities(node_types=ALL_NODE_TYPES, cycles=True, signed_spikes=True)
    file_suffix = ".nir"

    def lower(self, graph: PreparedGraph, **options: Any) -> nir.NIRGraph:
        """The flat graph itself: the reference runs NIR directly."""
        if options:
            msg = f"backend 'reference' takes no options, got {sorted(options)}"
            raise SnnxError(msg)
        return graph.graph

    def run(self, model: nir.NIRGraph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from snnx.ir.reference import simulate

        return simulate(model, inputs)

    def raise_(self, model: nir.NIRGraph) -> nir.NIRGraph:
        return model

    def save(self, model: nir.NIRGraph, path: str) -> None:
        from snnx.ir.io import save

        save(model, path)

    def load(self, path: str) -> nir.NIRGraph:
        from snnx.ir.io import load

        return load(path)

    def describe(self, model: nir.NIRGraph) -> str:
        return f"NIR graph with {len(model.nodes)} nodes, run by the numpy reference simulator"


@hookimpl
def snnx_register_backends(register) -> None:
    register(ReferenceBackend())
