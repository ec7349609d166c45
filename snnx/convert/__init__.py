"""ONNX → NIR conversion: a trained ANN becomes a rate-coded spiking network of IF neurons.

``snnx.convert.convert(model, calib)`` is the Python API (re-exported as ``snnx.convert``);
``snnx convert model.onnx --calib data.npz`` the command. The algorithm and the op mappings are in
``specs/conversion.md``; op handlers live in :mod:`snnx.convert.ops` and are registered through the
``snnx_register_onnx_ops`` hook by :mod:`snnx.convert.plugin`. Low latency (``specs/conversion.md`` §9):
``convert(..., steps=T, signed=True)``, then :func:`snnx.convert.finetune.finetune` and
:func:`snnx.convert.integer.integerise` on the result. :func:`count_ann_ops` counts an ONNX model's MACs
(``convert`` stores the count in the graph's metadata for ``snnx stats``).
"""

import sys
import types

from snnx.convert.ann_ops import count_ann_ops
from snnx.convert.driver import DEFAULT_PERCENTILE, ConversionResult, convert
from snnx.convert.evaluate import Evaluation, evaluate

__all__ = ["DEFAULT_PERCENTILE", "ConversionResult", "Evaluation", "convert", "count_ann_ops", "evaluate"]


class _CallableModule(types.ModuleType):
    """Importing this package sets ``snnx.convert`` to the package, hiding the ``snnx.convert()``
    function the top-level API defines; calling the package forwards to :func:`convert` so both
    spellings keep working."""

    def __call__(self, *args, **kwargs) -> ConversionResult:
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
