"""Address-event streams (a DVS sensor's output) and their binning into spike tensors.

An event stream is a numpy structured array of :data:`EVENT_DTYPE`: pixel ``x`` (column), ``y`` (row),
polarity ``p`` (1 = ON, brighter; 0 = OFF, darker) and timestamp ``t`` in microseconds. Binning follows
tonic's ``ToFrame`` layout, which the NIR paper's N-MNIST networks were trained on: channel = polarity
(OFF first), then row, then column, and a bin holds the number of events that fell into it.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from snnx.errors import SnnxError

#: One event: column, row, polarity (1 = ON), timestamp in microseconds.
EVENT_DTYPE = np.dtype([("x", np.uint16), ("y", np.uint16), ("p", np.uint8), ("t", np.int64)])


def make_events(x, y, p, t) -> np.ndarray:
    """An event array of :data:`EVENT_DTYPE` from four equally long sequences, sorted by time (stable)."""
    cols = [np.asarray(a).ravel() for a in (x, y, p, t)]
    if len({len(c) for c in cols}) != 1:
        msg = f"x, y, p and t must have the same length, got {[len(c) for c in cols]}"
        raise SnnxError(msg)
    # checked before the cast: a negative or too-large address would wrap in uint16/uint8 and surface
    # later as a wrong, misleading pixel
    for name, col in zip(EVENT_DTYPE.names, cols):
        if col.size and not (np.issubdtype(col.dtype, np.integer) or col.dtype == np.bool_):
            msg = f"event field {name!r} must hold integers, got dtype {col.dtype}"
            raise SnnxError(msg)
        info = np.iinfo(EVENT_DTYPE[name])
        if col.size and (int(col.min()) < info.min or int(col.max()) > info.max):
            msg = f"event field {name!r} must lie in {info.min}..{info.max}, got {int(col.min())}..{int(col.max())}"
            raise SnnxError(msg)
    events = np.empty(len(cols[0]), dtype=EVENT_DTYPE)
    for name, col in zip(EVENT_DTYPE.names, cols):
        events[name] = col
    return events[np.argsort(events["t"], kind="stable")]


def bin_events(
    events: np.ndarray,
    *,
    bin_us: float,
    steps: int,
    size: tuple[int, int] = (34, 34),
    start_us: float = 0.0,
) -> np.ndarray:
    """Count the events into ``steps`` bins of ``bin_us`` microseconds from ``start_us``.

    Returns float32 ``(steps, 2, H, W)`` with ``size = (H, W)``: ``out[k, p, y, x]`` is the number of
    events of polarity ``p`` at pixel ``(x, y)`` with ``start_us + k·bin_us <= t < start_us + (k+1)·bin_us``.
    Events before ``start_us`` or after the last bin are dropped (a recording longer than the window is
    cut, a shorter one leaves empty bins at the end); an event outside the sensor is an error, since it
    means the stream and ``size`` disagree.
    """
    steps = positive_int(steps, "steps")
    if not (isinstance(bin_us, numbers.Real) and math.isfinite(bin_us) and bin_us > 0):
        msg = f"bin_us must be a positive finite number of microseconds, got {bin_us!r}"
        raise SnnxError(msg)
    height, width = size
    if len(events) and (int(events["x"].max()) >= width or int(events["y"].max()) >= height):
        msg = (
            f"an event lies outside the {width}x{height} sensor (max x {int(events['x'].max())}, "
            f"max y {int(events['y'].max())}); pass the sensor's size=(H, W)"
        )
        raise SnnxError(msg)
    # floor puts a timestamp exactly on a bin edge into the later bin, as [start, end) intervals require
    k = np.floor((events["t"].astype(np.float64) - start_us) / bin_us)
    keep = (k >= 0) & (k < steps)
    out = np.zeros((steps, 2, height, width), dtype=np.float32)
    sel = events[keep]
    np.add.at(out, (k[keep].astype(np.int64), (sel["p"] > 0).astype(np.int64), sel["y"].astype(np.int64), sel["x"].astype(np.int64)), 1.0)
    return out


def positive_int(value: object, name: str) -> int:
    """``value`` as an int if it is a whole number ``>= 1`` (bool refused), else one clear error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        msg = f"{name} must be a positive integer, got {value!r}"
        raise SnnxError(msg)
    return int(value)


def stack_samples(frames: list[np.ndarray]) -> np.ndarray:
    """Per-sample ``(T, *shape)`` tensors as one ``(T, batch, *shape)`` input, the layout every backend takes."""
    if not frames:
        msg = "no samples to stack: the batch is empty; pass at least one sample (image, file index)"
        raise SnnxError(msg)
    return np.stack(frames, axis=1)
