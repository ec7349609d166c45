"""N-MNIST (Orchard et al. 2015) from a local copy of the published binary files; nothing is downloaded.

Layout: ``<root>/Train/<digit>/<id>.bin`` and ``<root>/Test/<digit>/<id>.bin`` (the unzipped
``Train.zip``/``Test.zip``). Each event is 40 bits, big-endian: x (8 bits), y (8 bits), then one 24-bit
word whose top bit is the polarity (1 = ON) and whose lower 23 bits are the timestamp in microseconds.
Sensor 34x34; a sample is three saccades, about 300 ms.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np

from snnx.bench.events import EVENT_DTYPE, bin_events, stack_samples
from snnx.errors import SnnxError

SENSOR = (34, 34)
SPLITS = ("Train", "Test")
_EVENT_BYTES = 5
_TIME_BITS = 23


def read_events(path: str | os.PathLike) -> np.ndarray:
    """One N-MNIST ``.bin`` file as an event array (:data:`snnx.bench.events.EVENT_DTYPE`), in file order."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        msg = f"cannot read N-MNIST file {str(path)!r}: {exc}"
        raise SnnxError(msg) from exc
    if raw.size % _EVENT_BYTES:
        msg = f"N-MNIST file {str(path)!r} has {raw.size} bytes, not a multiple of 5 (40-bit events): truncated or not N-MNIST"
        raise SnnxError(msg)
    raw = raw.reshape(-1, _EVENT_BYTES).astype(np.int64)
    events = np.empty(len(raw), dtype=EVENT_DTYPE)
    events["x"] = raw[:, 0]
    events["y"] = raw[:, 1]
    events["p"] = raw[:, 2] >> 7
    events["t"] = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return events


def write_events(path: str | os.PathLike, events: np.ndarray) -> None:
    """Write an event array in N-MNIST's binary format (what :func:`read_events` reads back)."""
    t = events["t"].astype(np.int64)
    if len(events) and (t.min() < 0 or t.max() >= 1 << _TIME_BITS):
        msg = f"N-MNIST timestamps are 23-bit microseconds (0..{(1 << _TIME_BITS) - 1}); got {t.min()}..{t.max()}"
        raise SnnxError(msg)
    if len(events) and max(int(events["x"].max()), int(events["y"].max())) > 255:
        msg = "N-MNIST pixel addresses are 8-bit (0..255)"
        raise SnnxError(msg)
    raw = np.empty((len(events), _EVENT_BYTES), dtype=np.uint8)
    raw[:, 0] = events["x"]
    raw[:, 1] = events["y"]
    raw[:, 2] = ((events["p"].astype(np.int64) > 0) << 7) | (t >> 16)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    raw.tofile(path)


def sample_files(root: str | os.PathLike, split: str = "Test") -> list[tuple[Path, int]]:
    """``(file, digit)`` for every sample of ``split`` under ``root``, sorted by digit then file name."""
    if split not in SPLITS:
        msg = f"unknown N-MNIST split {split!r}; choose from {', '.join(SPLITS)}"
        raise SnnxError(msg)
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        msg = f"no N-MNIST data: {str(folder)!r} is not a directory (expected <root>/{split}/<digit>/<id>.bin)"
        raise SnnxError(msg)
    files = [(f, d) for d in range(10) for f in sorted((folder / str(d)).glob("*.bin"))]
    if not files:
        msg = f"no N-MNIST samples under {str(folder)!r} (expected {split}/<digit>/<id>.bin)"
        raise SnnxError(msg)
    return files


def load_nmnist(
    root: str | os.PathLike,
    split: str = "Test",
    *,
    bin_us: float = 1000.0,
    steps: int = 300,
    indices: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """N-MNIST samples binned into spike counts: ``(x, labels)``.

    ``x`` is float32 ``(steps, batch, 2, 34, 34)`` (:func:`snnx.bench.events.bin_events`, each sample
    from its own time 0, ``bin_us`` microseconds per step), ``labels`` int64 ``(batch,)``. ``indices``
    picks samples from :func:`sample_files`' order (default: all of the split); an empty list is an
    error (:func:`snnx.bench.events.stack_samples`), as are non-integer or out-of-range indices.
    """
    files = sample_files(root, split)
    if indices is not None:
        indices = list(indices)
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, numbers.Integral)]
        if bad:
            msg = f"sample indices must be integers, got {bad[0]!r}"
            raise SnnxError(msg)
        if any(not -len(files) <= i < len(files) for i in indices):
            msg = f"sample index out of range: {split} has {len(files)} samples"
            raise SnnxError(msg)
    chosen = files if indices is None else [files[i] for i in indices]
    frames = [bin_events(read_events(f), bin_us=bin_us, steps=steps, size=SENSOR) for f, _ in chosen]
    return stack_samples(frames), np.array([d for _, d in chosen], dtype=np.int64)

