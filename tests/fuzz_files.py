"""Damaged ``.nir`` files for the CLI fuzz test: each is a valid file with one kind of damage.

:func:`mutate` copies a seed file and applies one of :data:`MUTATIONS` chosen by a seeded RNG, so a
failing file can be reproduced from its (seed file, index) pair.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np


def _datasets(f: h5py.File, numeric: bool | None = None) -> list[str]:
    found: list[str] = []

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            is_num = obj.dtype.kind in "fiub"
            if numeric is None or numeric == is_num:
                found.append(name)

    f.visititems(visit)
    return found


def _groups(f: h5py.File) -> list[str]:
    found: list[str] = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Group) else None)
    return found


def _replace(f: h5py.File, name: str, value) -> None:
    del f[name]
    f[name] = value


def truncate(path: Path, rng: np.random.Generator) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: int(rng.integers(0, len(data)))])
    return "truncated"


def bit_flip(path: Path, rng: np.random.Generator) -> str:
    data = bytearray(path.read_bytes())
    for _ in range(int(rng.integers(1, 8))):
        pos = int(rng.integers(0, len(data)))
        data[pos] ^= 1 << int(rng.integers(0, 8))
    path.write_bytes(bytes(data))
    return "bit-flipped"


def _h5(action: Callable[[h5py.File, np.random.Generator], str]) -> Callable[[Path, np.random.Generator], str]:
    def run(path: Path, rng: np.random.Generator) -> str:
        with h5py.File(path, "r+") as f:
            return action(f, rng)

    run.__name__ = action.__name__
    return run


def _pick(rng: np.random.Generator, items: list[str]) -> str | None:
    return items[int(rng.integers(0, len(items)))] if items else None


@_h5
def delete_dataset(f, rng):
    name = _pick(rng, _datasets(f))
    if name:
        del f[name]
    return f"deleted {name}"


@_h5
def delete_group(f, rng):
    name = _pick(rng, [g for g in _groups(f) if g.count("/") >= 2])
    if name:
        del f[name]
    return f"deleted group {name}"


@_h5
def to_string(f, rng):
    name = _pick(rng, _datasets(f))
    if name:
        _replace(f, name, np.bytes_(["abc", "1e-3", "", "nan", "LIF"][int(rng.integers(0, 5))]))
    return f"{name} -> string"


@_h5
def retype(f, rng):
    name = _pick(rng, _datasets(f, numeric=True))
    if not name:
        return "no numeric dataset"
    arr = np.asarray(f[name][()])
    choice = int(rng.integers(0, 7))
    new = [
        lambda a: a.astype(np.int8),
        lambda a: np.asarray(a).reshape(-1)[:1].reshape(()) if a.size else np.float64(0),
        lambda a: np.zeros((0,)),
        lambda a: np.asarray(a).reshape(-1),
        lambda a: np.stack([a, a]),
        lambda a: np.asarray(a, dtype=np.complex128),
        lambda a: np.asarray(a, dtype=bool),
    ][choice](arr)
    _replace(f, name, new)
    return f"{name} retyped ({choice})"


@_h5
def non_finite(f, rng):
    name = _pick(rng, [d for d in _datasets(f, numeric=True) if f[d].dtype.kind == "f"])
    if not name:
        return "no float dataset"
    arr = np.array(f[name][()], dtype=np.float64)
    bad = [np.nan, np.inf, -np.inf, 1e308, -0.0, 0.0, -1.0][int(rng.integers(0, 7))]
    if arr.ndim == 0:
        arr = np.float64(bad)
    else:
        arr.reshape(-1)[int(rng.integers(0, arr.size))] = bad
    _replace(f, name, arr)
    return f"{name} <- {bad}"


@_h5
def stray_edge(f, rng):
    edges = [tuple(e) for e in np.asarray(f["node/edges"][()]).reshape(-1, 2)]
    names = [n.encode() for n in f["node/nodes"]] + [b"ghost", b"", b"a.b.c"]
    src, dst = _pick(rng, names), _pick(rng, names)
    choice = int(rng.integers(0, 4))
    if choice == 0:
        edges.append((src, dst))
    elif choice == 1 and edges:
        edges.pop(int(rng.integers(0, len(edges))))
    elif choice == 2 and edges:
        a, b = edges[0]
        edges[0] = (b, a)
    else:
        edges.append(edges[-1] if edges else (src, dst))
    _replace(f, "node/edges", np.array(edges, dtype=object).astype("S") if edges else np.zeros((0, 2), dtype="S1"))
    return f"edges changed ({choice})"


@_h5
def bad_metadata(f, rng):
    nodes = [g for g in _groups(f) if g.startswith("node/nodes/") and g.count("/") == 2]
    choice = int(rng.integers(0, 8))
    target = "node/metadata/snnx"
    if choice >= 4 and nodes:
        target = _pick(rng, nodes) + "/metadata/snnx"
    if target in f:
        del f[target]
    grp = f.require_group(target)
    key, value = [
        ("dt", np.float64([0.0, -1.0, np.nan, np.inf][int(rng.integers(0, 4))])),
        ("dt", np.bytes_("fast")),
        ("version", np.int64(int(rng.integers(2, 100)))),
        ("version", np.bytes_("1.0")),
        ("reset", np.bytes_(["soft", "", "value ", "SUBTRACT"][int(rng.integers(0, 4))])),
        ("v_init", np.ones(int(rng.integers(2, 9)) * 7)),
        ("i_init", np.bytes_("zero")),
        ("v_init", np.full(3, np.nan)),
    ][choice]
    grp[key] = value
    return f"{target}/{key} = {value!r}"


@_h5
def wrong_type_name(f, rng):
    name = _pick(rng, [d for d in _datasets(f, numeric=False) if d.endswith("/type")])
    if name:
        _replace(f, name, np.bytes_(["LIF", "IF", "Conv2d", "Flatten", "NIRGraph", "Nope", "Delay"][int(rng.integers(0, 7))]))
    return f"{name} renamed"


@_h5
def zero_stride_or_negative(f, rng):
    name = _pick(rng, [d for d in _datasets(f, numeric=True) if d.rsplit("/", 1)[-1] in (
        "stride", "dilation", "groups", "padding", "kernel_size", "start_dim", "end_dim", "delay", "shape", "input_shape")])
    if not name:
        return "no geometry dataset"
    arr = np.array(f[name][()])
    _replace(f, name, np.full_like(arr, [0, -1, 10**6][int(rng.integers(0, 3))]))
    return f"{name} <- bad geometry"


MUTATIONS = [truncate, bit_flip, delete_dataset, delete_group, to_string, retype, non_finite, stray_edge,
             bad_metadata, wrong_type_name, zero_stride_or_negative]


def mutate(seed_file: Path, target: Path, rng: np.random.Generator) -> str:
    """Copy ``seed_file`` to ``target`` and damage it; returns what was done."""
    shutil.copyfile(seed_file, target)
    fn = MUTATIONS[int(rng.integers(0, len(MUTATIONS)))]
    try:
        return f"{fn.__name__}: {fn(target, rng)}"
    except (OSError, ValueError, KeyError, TypeError) as exc:  # h5py could not apply it: a bit flip instead
        shutil.copyfile(seed_file, target)
        return f"bit_flip (fallback from {fn.__name__}: {exc}): {bit_flip(target, rng)}"
