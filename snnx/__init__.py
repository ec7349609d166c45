"""snnx: one NIR model, an exact discrete-time meaning, every SNN framework.

The public API::

    import snnx
    graph = snnx.load("model.nir")                 # nir.NIRGraph, validated
    out = snnx.simulate(graph, x)                   # reference traces, x is (T, batch, *shape)
    model = snnx.lower(graph, to="snntorch")       # a torch.nn.Module of snnTorch neurons
    snnx.save(snnx.raise_(model), "trained.nir")   # export back, contract metadata included
    snnx.check(graph)                               # every backend vs the reference
"""

from __future__ import annotations

from typing import Any

from snnx.api import Agreement, check, lower, raise_, run
from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.ir.io import load, save
from snnx.ir.reference import simulate
from snnx.ir.validate import validate
from snnx.plugins import get_backend, get_backends
from snnx.registry import Backend, Capabilities

__version__ = "0.1.0"


def convert(*args: Any, **kwargs: Any) -> Any:
    """Convert an ONNX ANN into a NIR SNN; see :func:`snnx.convert.convert`."""
    from snnx.convert import convert as _convert

    return _convert(*args, **kwargs)


__all__ = [
    "Agreement",
    "Backend",
    "Capabilities",
    "SnnxError",
    "__version__",
    "check",
    "convert",
    "get_backend",
    "get_backends",
    "hookimpl",
    "load",
    "lower",
    "raise_",
    "run",
    "save",
    "simulate",
    "validate",
]
