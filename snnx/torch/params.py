"""Reading NIR parameters as float64 arrays: numpy only, no torch.

A backend's ``fold.py`` (its parameter tables and refusals, which must work without torch) and the
contract neuron (:mod:`snnx.torch.neuron`, which re-exports both functions) share these two helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def f64(value: Any) -> np.ndarray:
    """A NIR parameter as a float64 array (``None`` counts as 0, NIR's default ``v_reset``)."""
    return np.zeros(()) if value is None else np.asarray(value, dtype=np.float64)


def is_uniform(value: Any) -> bool:
    """Whether every element of a NIR parameter has the same value."""
    arr = f64(value)
    return arr.size > 0 and bool(np.all(arr == arr.flat[0]))


__all__ = ["f64", "is_uniform"]
