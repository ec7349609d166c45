"""The ANN a converted graph came from: its operation count, where it is stored, and the low-bit rule.

A graph written by ``snnx convert`` carries the ONNX model's operation count in
``graph.metadata["snnx"]["ann"]`` (``{"macs", "adds", "model"}``), so ``snnx stats`` can compare the
SNN's operations with the ANN it replaces without the ``.onnx`` file at hand. Without that entry the
ANN is the graph's own topology with ReLUs for neurons (``specs/metrics.md`` §2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir

from snnx.errors import ValidationError

#: Key under ``graph.metadata["snnx"]`` that holds the ANN's operation count.
ANN_KEY = "ann"
#: One MAC costs this many low-bit SOPs (Zou et al., Frontiers in Neuroscience 2024, all-integer SNN).
MAC_AS_SOPS = 4


@dataclass(frozen=True)
class AnnOps:
    """Operations of one forward pass of an ANN, per sample.

    :ivar macs: multiply-accumulates of its weighted layers (Conv, Gemm, MatMul), padding taps excluded.
    :ivar adds: additions of its pools (one per input element of each window, padding excluded).
    :ivar source: where the count comes from: ``"topology"`` (the SNN graph with ReLUs for neurons),
        ``"metadata"`` (stored by ``snnx convert``) or ``"onnx:<file>"`` (counted from the model).
    """

    macs: float
    adds: float
    source: str = "topology"

    def to_metadata(self, model: str = "") -> dict[str, Any]:
        """The ``graph.metadata["snnx"]["ann"]`` entry for this count."""
        return {"macs": float(self.macs), "adds": float(self.adds), "model": model}


def ann_from_metadata(graph: nir.NIRGraph) -> AnnOps | None:
    """The ANN count ``snnx convert`` stored in ``graph``, or ``None`` when the graph has none.

    :raises ValidationError: an entry without numeric, non-negative ``macs`` and ``adds``.
    """
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    entry = meta.get("snnx", {}).get(ANN_KEY) if isinstance(meta.get("snnx"), dict) else None
    if entry is None:
        return None
    try:
        macs, adds = float(entry["macs"]), float(entry["adds"])
    except (KeyError, TypeError, ValueError) as exc:
        msg = (
            f'graph metadata snnx.{ANN_KEY} = {entry!r} needs numeric "macs" and "adds"; convert the model '
            "again or pass --ann model.onnx"
        )
        raise ValidationError(msg) from exc
    if macs < 0 or adds < 0:
        msg = f"graph metadata snnx.{ANN_KEY} has negative counts {entry!r}; convert the model again"
        raise ValidationError(msg)
    return AnnOps(macs=macs, adds=adds, source="metadata")


def store_ann(graph: nir.NIRGraph, ops: AnnOps, model: str = "") -> nir.NIRGraph:
    """Write ``ops`` into ``graph.metadata["snnx"]["ann"]`` (in place) and return the graph."""
    if not isinstance(graph.metadata, dict):
        graph.metadata = {}
    entry = dict(graph.metadata.get("snnx", {}))
    entry[ANN_KEY] = ops.to_metadata(model)
    graph.metadata["snnx"] = entry
    return graph


__all__ = ["ANN_KEY", "MAC_AS_SOPS", "AnnOps", "ann_from_metadata", "store_ann"]
