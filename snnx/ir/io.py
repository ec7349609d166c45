"""Reading and writing ``.nir`` graphs and NIRData traces, with clear errors and atomic writes.

snnx uses ``nir``'s own node classes. The reader is snnx's own (on top of ``nir.serialization``'s
HDF5 decoding) for two reasons: ``nir.read`` type-checks nested graphs unconditionally and fails with a
bare ``ValueError`` that names no node, and it mutates the graph (it inserts ``Input`` nodes). Here a
file loads as written, and problems are reported by :mod:`snnx.ir.validate` with the node's path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nir
import numpy as np

from snnx.errors import NirFileError, ValidationError
from snnx.ir.nodes import KINDS

if TYPE_CHECKING:  # pragma: no cover
    from snnx.ir.validate import Report

#: NIR node types snnx can read: every kind of the node table, plus nested graphs.
NODE_TYPES: dict[str, type] = {name: kind.cls for name, kind in KINDS.items()} | {"NIRGraph": nir.NIRGraph}


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_str(value[()])
    return str(value)


def _build_node(data: dict[str, Any], path: str) -> nir.NIRNode:
    if not isinstance(data, dict) or "type" not in data:
        msg = f"node {path!r}: no 'type' entry; the file is not a NIR graph or is damaged"
        raise NirFileError(msg)
    type_name = _as_str(data["type"])
    if type_name not in NODE_TYPES:
        known = ", ".join(sorted(NODE_TYPES))
        msg = f"node {path!r}: unknown node type {type_name!r}; NIR node types are: {known}"
        raise NirFileError(msg)
    fields = {k: v for k, v in data.items() if k != "type"}
    if type_name == "NIRGraph":
        return _build_graph(fields, path)
    for key, value in fields.items():
        if key in ("padding", "metadata") or isinstance(value, dict):
            continue
        if isinstance(value, (str, bytes)) or (isinstance(value, np.ndarray) and value.dtype.kind in "SUO"):
            msg = f"node '{path}.{key}': must be a number or an array of numbers, got text {_as_str(value)[:40]!r}"
            raise NirFileError(msg)
    fields["type"] = type_name
    if type_name in ("Conv1d", "Conv2d"):
        fields.setdefault("input_shape", None)
        # nir's constructor divides by them to compute the output shape (numpy warnings, then inf).
        for key in ("stride", "dilation", "groups"):
            value = fields.get(key)
            if value is not None and np.any(np.asarray(value, dtype=np.float64) < 1):
                msg = f"node {path!r} ({type_name}): {key} {np.asarray(value).tolist()} must be >= 1"
                raise NirFileError(msg)
    try:
        node = nir.dict2NIRNode(fields)
        return _regroup(node) if type_name in ("Conv1d", "Conv2d") else node
    except Exception as exc:  # noqa: BLE001 - nir's constructors fail in many ways on damaged data
        detail = str(exc) or type(exc).__name__
        msg = f"node {path!r} ({type_name}): cannot build it from the file: {detail}"
        raise NirFileError(msg) from exc


def _build_graph(fields: dict[str, Any], path: str) -> nir.NIRGraph:
    prefix = f"{path}." if path else ""
    raw_nodes = fields.get("nodes")
    if not isinstance(raw_nodes, dict):
        msg = f"graph {path or '<top>'!r}: no 'nodes' group; the file is not a NIR graph or is damaged"
        raise NirFileError(msg)
    nodes = {str(k): _build_node(v, f"{prefix}{k}") for k, v in raw_nodes.items()}
    raw_edges = fields.get("edges", np.zeros((0, 2), dtype=object))
    try:
        edges = [(_as_str(a), _as_str(b)) for a, b in np.asarray(raw_edges).reshape(-1, 2)]
    except ValueError as exc:
        msg = f"graph {path or '<top>'!r}: edges are not a list of (source, target) pairs"
        raise NirFileError(msg) from exc
    metadata = fields.get("metadata", {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(metadata), type_check=False)


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a ``.nir`` file into a :class:`nir.NIRGraph` exactly as written (no validation)."""
    import h5py
    from nir.serialization import hdf2dict

    path = Path(path)
    if not path.exists():
        msg = f"no such file: '{path}'"
        raise NirFileError(msg)
    if path.is_dir():
        msg = f"'{path}' is a directory, not a .nir file"
        raise NirFileError(msg)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                msg = f"'{path}' is an HDF5 file but not a NIR graph (no 'node' group)"
                raise NirFileError(msg)
            data = hdf2dict(f["node"])
    except NirFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        msg = f"cannot read '{path}': not a valid .nir (HDF5) file, or it is truncated ({exc})"
        raise NirFileError(msg) from exc
    return _build_node(data, "") if _as_str(data.get("type", "")) == "NIRGraph" else _refuse_single(data)


def _refuse_single(data: dict[str, Any]) -> nir.NIRGraph:
    """Raise for a file whose root is one node, naming its type (building it reports a damaged node first)."""
    node = _build_node(data, "<root>")
    msg = f"the file holds a single {type(node).__name__} node, not a NIRGraph"
    raise NirFileError(msg)


def load(path: str | os.PathLike, *, validate: bool = True) -> nir.NIRGraph:
    """Load a ``.nir`` file.

    :param path: the file.
    :param validate: run :func:`snnx.ir.validate.validate` and raise its first error (default).
    :raises NirFileError: the file is missing, not HDF5, truncated, or not a NIR graph.
    :raises ValidationError: the graph is structurally wrong; the message names the node.
    """
    return load_with_report(path)[0] if validate else read_graph(path)


def load_with_report(path: str | os.PathLike, dt: float | None = None) -> tuple[nir.NIRGraph, Report]:
    """Load and validate a ``.nir`` file, returning the validation report (shapes, warnings) too.

    For callers that need the report: validating once here spares them a second pass.

    :param dt: time step to check stability against (default: the graph's contract dt).
    :raises NirFileError: as :func:`load`.
    :raises ValidationError: as :func:`load`; the message starts with the file's path.
    """
    from snnx.ir.validate import validate

    graph = read_graph(path)
    try:
        report = validate(graph, dt=dt)
    except ValidationError as exc:
        msg = f"'{path}': {exc}"
        raise ValidationError(msg, node=exc.node) from exc
    return graph, report


def check_writable(path: str | os.PathLike) -> Path:
    """The directory ``path`` would be written into, after checking it exists and is writable.

    Commands call it before long work, so a bad ``-o`` fails at once rather than after the work.

    :raises NirFileError: the directory does not exist or is not writable.
    """
    parent = Path(path).parent
    if not parent.is_dir():
        msg = f"cannot write '{path}': directory '{parent}' does not exist"
        raise NirFileError(msg)
    if not os.access(parent, os.W_OK):
        msg = f"cannot write '{path}': directory '{parent}' is not writable"
        raise NirFileError(msg)
    return parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it.

    A failed or interrupted write never leaves a half-written file, and an existing file stays intact.
    """
    target = Path(path)
    parent = check_writable(target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        msg = f"cannot write '{target}': {exc.strerror or exc}"
        raise NirFileError(msg) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; a written file gets what open() would give it (0666 minus umask),
    # or keeps the mode of the file it replaces.
    with contextlib.suppress(OSError):
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically (see :func:`atomic_path`)."""
    try:
        with atomic_path(path) as tmp:
            writer(tmp)
    except OSError as exc:
        msg = f"cannot write '{path}': {exc.strerror or exc}"
        raise NirFileError(msg) from exc


def save(graph: nir.NIRGraph, path: str | os.PathLike) -> None:
    """Write ``graph`` (or a prepared graph's NIR graph) to a ``.nir`` file atomically (temp file + rename).

    :raises NirFileError: the path cannot be written; the old file, if any, is left intact.
    """
    from snnx.ir.validate import nir_graph_of

    graph = nir_graph_of(graph)
    if not isinstance(graph, nir.NIRGraph):
        msg = f"snnx.save expects a nir.NIRGraph, got {type(graph).__name__}"
        raise TypeError(msg)
    write_atomic(path, lambda tmp: _write_nir(tmp, _writable(graph)))


#: node.metadata["snnx"] key marking a grouped conv stored as its dense, block-diagonal equivalent.
GROUPS_KEY = "groups"


def _ungroup(node: Any) -> None:
    """Store a grouped conv as the equivalent dense conv (zeros off the diagonal blocks), in place.

    nir (up to 1.0.8 at least) infers a conv's input type as ``(weight.shape[1], *input_shape)``,
    ignoring ``groups``, so ``nir.read``'s type check rejects every file with a grouped conv. The dense
    form computes the same thing and nir types it right; ``node.metadata["snnx"]["groups"]`` lets
    :func:`_regroup` restore the grouped form on load (docs/nir-compatibility.md).
    """
    groups = int(np.asarray(node.groups))
    w = np.asarray(node.weight)
    c_out, c_group = w.shape[:2]
    out_group = c_out // groups
    dense = np.zeros((c_out, c_group * groups, *w.shape[2:]), dtype=w.dtype)
    for g in range(groups):
        dense[g * out_group : (g + 1) * out_group, g * c_group : (g + 1) * c_group] = w[g * out_group : (g + 1) * out_group]
    node.weight = dense
    node.groups = 1
    meta = dict(node.metadata or {})
    meta["snnx"] = {**dict(meta.get("snnx", {})), GROUPS_KEY: groups}
    node.metadata = meta


def _regroup(node: Any) -> Any:
    """Undo :func:`_ungroup` when the node carries the marker and its weight is block-diagonal."""
    meta = node.metadata if isinstance(node.metadata, dict) else {}
    entry = meta.get("snnx") if isinstance(meta.get("snnx"), dict) else {}
    if GROUPS_KEY not in entry:
        return node
    entry = dict(entry)
    try:
        groups = int(np.asarray(entry.pop(GROUPS_KEY)))
    except (TypeError, ValueError):
        groups = 0
    node.metadata = {**meta, "snnx": entry}
    if not entry:
        del node.metadata["snnx"]
    w = np.asarray(node.weight)
    if groups < 2 or int(np.asarray(node.groups)) != 1 or w.ndim < 3 or w.shape[0] % groups or w.shape[1] % groups:
        return node  # not what _ungroup wrote: keep the dense conv, which means the same
    out_group, c_group = w.shape[0] // groups, w.shape[1] // groups
    blocks = [w[g * out_group : (g + 1) * out_group, g * c_group : (g + 1) * c_group] for g in range(groups)]
    mask = np.ones(w.shape[:2], dtype=bool)
    for g in range(groups):
        mask[g * out_group : (g + 1) * out_group, g * c_group : (g + 1) * c_group] = False
    if np.any(w[mask] != 0):
        return node
    node.weight = np.concatenate(blocks, axis=0)
    node.groups = groups
    return node


def _write_nir(path: Path, graph: nir.NIRGraph) -> None:
    """``nir.write``, except that fields whose value is ``None`` are left out (``nir.write`` cannot store
    them; ``nir.read`` takes a missing field as ``None``)."""
    import h5py

    def drop_none(d: dict) -> dict:
        return {k: drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    def write_recursive(group: Any, node: dict) -> None:
        for k, v in node.items():
            if k == "metadata":
                if v != {}:
                    write_recursive(group.create_group(k), v)
            elif isinstance(v, str):
                group.create_dataset(k, data=v, dtype=h5py.string_dtype())
            elif isinstance(v, np.ndarray):
                group.create_dataset(k, data=v, dtype=v.dtype, compression="gzip")
            elif isinstance(v, dict):
                write_recursive(group.create_group(str(k)), v)
            else:
                group.create_dataset(k, data=v)

    with h5py.File(path, "w") as f:
        f.create_dataset("version", data=nir.version, dtype=h5py.string_dtype())
        write_recursive(f.create_group("node"), drop_none(graph.to_dict()))


def _scalarise(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, dict):
        return {k: _scalarise(v) for k, v in value.items()}
    return value


def _writable(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A copy ``nir.write`` can store: h5py refuses to compress 0-d arrays, so they become scalars."""
    import copy

    out = copy.deepcopy(graph)
    stack = [out]
    while stack:
        g = stack.pop()
        g.metadata = _scalarise(dict(g.metadata or {}))
        for node in g.nodes.values():
            if isinstance(node, nir.NIRGraph):
                stack.append(node)
                continue
            for attr, value in list(vars(node).items()):
                if attr not in ("input_type", "output_type"):
                    setattr(node, attr, _scalarise(value))
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and int(np.asarray(node.groups)) > 1:
                _ungroup(node)
    return out


# -- traces -------------------------------------------------------------------------------------------
def save_traces(path: str | os.PathLike, traces: dict[str, np.ndarray], dt: float) -> None:
    """Write time-major traces ``{name: (T, batch, *shape)}`` as NIRData (``nir.NIRGraphData``).

    NIRData stores ``(batch, T, neurons)``; the per-sample shape is recovered from the graph on load.
    """
    nodes = {}
    for name, trace in traces.items():
        arr = np.asarray(trace)
        data = np.ascontiguousarray(np.moveaxis(arr, 0, 1).reshape(arr.shape[1], arr.shape[0], -1))
        nodes[name] = nir.NIRNodeData(observables={"trace": nir.TimeGriddedData(data=data, dt=float(dt))})
    write_atomic(path, lambda tmp: nir.write_data(tmp, nir.NIRGraphData(nodes=nodes)))


def load_traces(
    path: str | os.PathLike, shapes: dict[str, tuple[int, ...]] | None = None
) -> tuple[dict[str, np.ndarray], float]:
    """Read NIRData traces back as time-major ``{name: (T, batch, *shape)}`` and their ``dt``."""
    try:
        data = nir.read_data(str(path))
    except (OSError, ValueError, KeyError) as exc:
        msg = f"cannot read traces from '{path}': {exc}"
        raise NirFileError(msg) from exc
    out: dict[str, np.ndarray] = {}
    dt = 0.0
    for name, node_data in data.nodes.items():
        obs = node_data.observables["trace"]
        dt = float(obs.dt)
        arr = np.moveaxis(np.asarray(obs.data), 1, 0)
        shape = tuple(shapes[name]) if shapes and name in shapes else (arr.shape[-1],)
        out[name] = arr.reshape(arr.shape[0], arr.shape[1], *shape)
    return out, dt
