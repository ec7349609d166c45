"""ONNX ``Gemm`` weight semantics, shared by the op handlers and the ONNX rewrites.

A public module of :mod:`snnx.convert` (not inside ``ops/``) because the rewrites run before any
handler and must not reach into the handlers' private helpers.
"""

from __future__ import annotations

import numpy as np


def gemm_weight_bias(
    attrs: dict, b: np.ndarray, c: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``Gemm``'s ``alpha·B`` as an ``(out, in)`` matrix and ``beta·C`` as a per-output bias.

    Shared by the Gemm handler (:mod:`snnx.convert.ops.linear`) and the BatchNorm folding rewrite
    (:mod:`snnx.convert.rewrites`) so both read ``alpha``, ``beta``,
    ``transB`` and the broadcast forms of ``C`` (scalar, ``(N,)``, ``(1, N)``) the same way.

    :returns: the matrix and the bias (zeros without ``C``), or ``None`` for the bias when ``C`` varies
        over the batch (it has neither 1 nor ``out`` elements).
    """
    w = np.asarray(b, dtype=np.float64) * float(attrs.get("alpha", 1.0))
    if not attrs.get("transB", 0):
        w = w.T
    out = w.shape[0]
    if c is None:
        return w, np.zeros(out)
    c = np.asarray(c, dtype=np.float64) * float(attrs.get("beta", 1.0))
    if c.size not in (1, out):
        return w, None
    return w, np.broadcast_to(c.reshape(-1), (out,)).copy()


__all__ = ["gemm_weight_bias"]
