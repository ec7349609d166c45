"""Sample data (``.npz``) and activation calibration with onnxruntime.

The ``.npz`` format: an array ``x`` of samples shaped ``(N, *input_shape_without_batch)`` (for example
``(N, 1, 8, 8)`` for a model whose input is ``(batch, 1, 8, 8)``) and, for ``--evaluate``, an integer
array ``y`` of ``N`` class labels. Nothing else is read.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from snnx.errors import ConversionError

#: Per tensor, at most this many positive activations are kept for the percentile (a random subset).
MAX_VALUES = 2_000_000


def load_npz(
    path: str | os.PathLike, *, need_labels: bool, what: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x`` (and ``y``) from an ``.npz`` file.

    :param what: the option the file came from, for messages (``"--calib"``).
    :raises ConversionError: missing file, not an npz, no ``x``, or no ``y`` when labels are needed.
    """
    p = Path(path)
    if not p.is_file():
        msg = f"{what} {str(p)!r}: no such file"
        raise ConversionError(msg)
    try:
        with np.load(p, allow_pickle=False) as data:
            keys = list(data.keys())
            x = np.asarray(data["x"]) if "x" in keys else None
            y = np.asarray(data["y"]) if "y" in keys else None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        msg = f"{what} {str(p)!r} is not a readable .npz file ({type(exc).__name__}: {exc})"
        raise ConversionError(msg) from exc
    if x is None:
        msg = f"{what} {str(p)!r} has no array 'x' (found {keys}); save it with np.savez(path, x=samples, y=labels)"
        raise ConversionError(msg)
    if need_labels:
        if y is None:
            msg = f"{what} {str(p)!r} has no array 'y' of labels (found {keys})"
            raise ConversionError(msg)
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            msg = f"{what} {str(p)!r}: 'y' must be {len(x)} integer labels, got {y.dtype} array of shape {y.shape}"
            raise ConversionError(msg)
    return x, y


def labelled_samples(
    data: str | os.PathLike | tuple[np.ndarray, np.ndarray],
    per_sample: tuple[int, ...],
    input_name: str,
    option: str,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples and labels from an ``.npz`` path (arrays ``x``, ``y``) or an ``(x, y)`` pair, checked.

    :param option: the option a path came from, for messages (``"--evaluate"``).
    :param what: what an in-memory pair is called in messages (``"evaluation data"``).
    """
    if isinstance(data, (str, os.PathLike)):
        x, y = load_npz(data, need_labels=True, what=option)
        what = f"{option} {str(data)!r}"
    else:
        x, y = data
    x, y = check_samples(x, per_sample, input_name, what), np.asarray(y)
    if len(y) != len(x):
        msg = f"{what}: {len(x)} samples but {len(y)} labels"
        raise ConversionError(msg)
    return x, y


def check_samples(x: np.ndarray, per_sample: tuple[int, ...], input_name: str, what: str) -> np.ndarray:
    """``x`` as float32 samples of the model's per-sample input shape, or a clear error."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        msg = f"{what}: samples must be numeric, got dtype {x.dtype}"
        raise ConversionError(msg)
    if x.ndim != len(per_sample) + 1 or tuple(x.shape[1:]) != tuple(per_sample):
        want = ", ".join(map(str, per_sample))
        msg = (
            f"{what}: samples have shape {tuple(x.shape)}, but model input {input_name!r} takes "
            f"(batch, {want}); 'x' must be shaped (N, {want})"
        )
        raise ConversionError(msg)
    if len(x) == 0:
        msg = f"{what}: 'x' holds no samples"
        raise ConversionError(msg)
    if not np.all(np.isfinite(x)):
        msg = f"{what}: samples contain NaN or inf"
        raise ConversionError(msg)
    return x.astype(np.float32, copy=False)


def session(model: onnx.ModelProto, extra_outputs: list[str] = ()):  # type: ignore[assignment]
    """An onnxruntime CPU session for ``model`` that also returns ``extra_outputs``."""
    import onnxruntime as ort

    if extra_outputs:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        infos = {vi.name: vi for vi in out.graph.value_info}
        present = {o.name for o in out.graph.output}
        for name in extra_outputs:
            if name not in present:
                if name not in infos:
                    msg = f"tensor {name!r} has no inferred type; cannot record it for calibration"
                    raise ConversionError(msg)
                out.graph.output.append(infos[name])
        model = out
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def batches(
    sess,
    input_name: str,
    x: np.ndarray,
    batch: int | None,
    outputs: list[str] | None,
    feeds: dict[str, np.ndarray] | None = None,
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Run ``sess`` over ``x`` in chunks; a fixed ``batch`` pads the last chunk (padding is dropped).

    ``feeds`` are further inputs given unchanged with every chunk.
    """
    step = batch or 256
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        n = len(chunk)
        if batch and n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        results = sess.run(outputs, {input_name: chunk, **(feeds or {})})
        yield n, [np.asarray(r)[:n] for r in results]


def calibrate(
    model: onnx.ModelProto,
    input_name: str,
    batch: int,
    x: np.ndarray,
    tensors: list[str],
    percentile: float,
    seed: int = 0,
) -> tuple[dict[str, float], list[str]]:
    """The ``percentile`` of the positive values of each tensor over the samples ``x``.

    :returns: ``{tensor: λ}`` and notes about tensors that never became positive (λ = 1 then).
    """
    if not 0.0 < percentile <= 100.0:
        msg = f"--percentile must be in (0, 100], got {percentile}"
        raise ConversionError(msg)
    if not tensors:
        return {}, []
    rng = np.random.default_rng(seed)
    sess = session(model, tensors)
    # Each value gets a random key; keeping the smallest keys (bottom-k sampling) leaves a uniform
    # random subset of everything seen, whichever batch it came in. Subsampling the merged pool with
    # rng.choice instead would under-weight the early batches at every merge.
    kept: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in tensors}
    sizes = dict.fromkeys(tensors, 0)
    for _n, results in batches(sess, input_name, x, batch, tensors):
        for name, value in zip(tensors, results, strict=True):
            pos = value[value > 0].astype(np.float64)
            kept[name].append((pos, rng.random(pos.size)))
            sizes[name] += pos.size
            if sizes[name] > 2 * MAX_VALUES:
                kept[name], sizes[name] = [_smallest_keys(kept[name], MAX_VALUES)], MAX_VALUES
    scales: dict[str, float] = {}
    notes: list[str] = []
    for name in tensors:
        if sizes[name] > MAX_VALUES:
            kept[name] = [_smallest_keys(kept[name], MAX_VALUES)]
        values = np.concatenate([v for v, _keys in kept[name]]) if kept[name] else np.zeros(0)
        if values.size == 0:
            scales[name] = 1.0
            notes.append(
                f"activation {name!r} is never positive on the calibration data; its neurons stay silent"
            )
        else:
            scales[name] = float(np.percentile(values, percentile))
    return scales, notes


def _smallest_keys(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` values (with their keys) whose random keys are smallest."""
    values = np.concatenate([v for v, _ in parts])
    keys = np.concatenate([k for _, k in parts])
    idx = np.argpartition(keys, n)[:n]
    return values[idx], keys[idx]
