"""A second, independent implementation of ``specs/semantics.md``, used to check the golden traces.

The reference simulator (:mod:`snnx.ir.reference`) computes the golden traces of the conformance
suite, so a bug in it would be written into the suite and every backend would be held to the bug.
This module was written from the text of ``specs/semantics.md`` alone and shares no code with
``snnx.ir``: it has its own flattening (§7), its own schedule (§6), its own node equations (§4) and
initial state (§5). It is deliberately naive: Python loops over every time step, sample, neuron,
weight and kernel tap, one float at a time, so that it reads like the equations and not like the
vectorised reference. It is slow, and only meant for the small conformance graphs.

``run(graph, inputs)`` returns ``{node_name: (T, batch, *shape) float64}`` for every node of the
flattened graph (Outputs included). ``tests/test_oracle.py`` checks that it reproduces every stored
golden trace.
"""

from __future__ import annotations

import itertools
from typing import Any

import nir
import numpy as np

DEFAULT_DT = 1e-4
SPIKING = ("IF", "LIF", "CubaLIF")


# -- reading the contract (§1) ------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else ""
    if isinstance(value, bytes):
        value = value.decode()
    return str(value)


def _contract(obj: Any) -> dict:
    meta = getattr(obj, "metadata", None) or {}
    entry = meta.get("snnx", {}) if isinstance(meta, dict) else {}
    return entry if isinstance(entry, dict) else {}


def _dt(graph: nir.NIRGraph) -> float:
    stored = _contract(graph).get("dt")
    return DEFAULT_DT if stored is None else float(np.asarray(stored).reshape(-1)[0])


def _per_element(value: Any, shape: tuple[int, ...], default: float = 0.0) -> list[float]:
    """A parameter (scalar or array broadcast to ``shape``) as a flat list of Python floats."""
    if value is None:
        value = default
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
    return [float(arr[idx]) for idx in itertools.product(*(range(s) for s in shape))]


# -- §7: flatten nested graphs ------------------------------------------------------------------------
def _flatten(graph: nir.NIRGraph) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    boundary: set[str] = set()  # the inner Input/Output nodes, to be spliced out
    inner_io: dict[str, tuple[list[str], list[str]]] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node)
            ins = sorted(k for k, n in sub_nodes.items() if type(n).__name__ == "Input")
            outs = sorted(k for k, n in sub_nodes.items() if type(n).__name__ == "Output")
            inner_io[name] = ([f"{name}.{k}" for k in ins], [f"{name}.{k}" for k in outs])
            for k, n in sub_nodes.items():
                nodes[f"{name}.{k}"] = n
                if type(n).__name__ in ("Input", "Output"):
                    boundary.add(f"{name}.{k}")
            edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in sub_edges]
        else:
            nodes[name] = node
    for src, dst in graph.edges:
        if src in inner_io:
            (src,) = inner_io[src][1]  # the subgraph's single Output
        if dst in inner_io:
            (dst,) = inner_io[dst][0]  # the subgraph's single Input
        edges.append((src, dst))
    # the boundary nodes are identities: p -> X -> s becomes p -> s
    for ident in sorted(boundary):
        into = [a for a, b in edges if b == ident]
        out_of = [b for a, b in edges if a == ident]
        edges = [(a, b) for a, b in edges if a != ident and b != ident]
        edges += [(p, s) for p in into for s in out_of]
        del nodes[ident]
    return nodes, edges


# -- §6: schedule ---------------------------------------------------------------------------------------
def _reaches(edges: list[tuple[str, str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        for a, b in edges:
            if a == n and b not in seen:
                seen.add(b)
                todo.append(b)
    return False


def _schedule(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[list[str], set[tuple[str, str]]]:
    """The evaluation order and the delayed edges, as §6 defines them."""
    roots = sorted(n for n, node in nodes.items() if type(node).__name__ == "Input")
    # distance: the fewest edges from any Input (a plain breadth-first search)
    distance = {r: 0 for r in roots}
    queue = list(roots)
    for n in queue:
        for a, b in edges:
            if a == n and b not in distance:
                distance[b] = distance[n] + 1
                queue.append(b)
    missing = set(nodes) - set(distance)
    if missing:
        raise ValueError(f"unreachable nodes {sorted(missing)}")
    # an edge a -> b closes a cycle when b leads back to a and b is no farther from the inputs than a
    delayed = {(a, b) for a, b in set(edges) if _reaches(edges, b, a) and distance[b] <= distance[a]}
    # any order in which every other edge goes forward
    order: list[str] = []
    while len(order) < len(nodes):
        for n in sorted(nodes):
            if n not in order and all(a in order for a, b in edges if b == n and (a, b) not in delayed):
                order.append(n)
                break
        else:
            raise ValueError("the delayed edges do not break every cycle")
    return order, delayed


# -- §4: stateless nodes, one sample at a time --------------------------------------------------------
def _affine(node: Any, x: np.ndarray, with_bias: bool) -> np.ndarray:
    w = np.asarray(node.weight, dtype=np.float64)
    n_out, n_in = w.shape
    bias = _per_element(node.bias if with_bias else 0.0, (n_out,))
    y = np.zeros(n_out)
    for o in range(n_out):
        total = 0.0
        for i in range(n_in):
            total += float(w[o, i]) * float(x[i])
        y[o] = total + bias[o]
    return y


def _ints(value: Any, n: int) -> list[int]:
    arr = np.asarray(value).reshape(-1)
    return [int(arr[0])] * n if arr.size == 1 else [int(v) for v in arr]


def _conv(node: Any, x: np.ndarray, nd: int) -> np.ndarray:
    w = np.asarray(node.weight, dtype=np.float64)
    c_out, c_per_group = w.shape[:2]
    kernel = list(w.shape[2:])
    groups = int(np.asarray(node.groups))
    stride = _ints(node.stride, nd)
    dilation = _ints(node.dilation, nd)
    pad = node.padding
    text = _text(pad) if isinstance(pad, (str, bytes)) or np.asarray(pad).dtype.kind in "SUO" else None
    if text == "valid":
        before = [0] * nd
        after = [0] * nd
    elif text == "same":
        total = [dilation[k] * (kernel[k] - 1) for k in range(nd)]
        before = [t // 2 for t in total]
        after = [t - t // 2 for t in total]
    else:
        before = after = _ints(pad, nd)
    size = list(x.shape[1:])
    out_size = [
        (size[k] + before[k] + after[k] - dilation[k] * (kernel[k] - 1) - 1) // stride[k] + 1 for k in range(nd)
    ]
    bias = _per_element(node.bias, (c_out,))
    out_per_group = c_out // groups
    y = np.zeros((c_out, *out_size))
    for co in range(c_out):
        g = co // out_per_group
        for pos in itertools.product(*(range(s) for s in out_size)):
            total = 0.0
            for cg in range(c_per_group):
                ci = g * c_per_group + cg
                for tap in itertools.product(*(range(k) for k in kernel)):
                    src = [pos[k] * stride[k] - before[k] + tap[k] * dilation[k] for k in range(nd)]
                    if all(0 <= src[k] < size[k] for k in range(nd)):  # zero padding outside
                        total += float(w[(co, cg, *tap)]) * float(x[(ci, *src)])
            y[(co, *pos)] = total + bias[co]
    return y


def _pool(node: Any, x: np.ndarray, average: bool) -> np.ndarray:
    k = _ints(node.kernel_size, 2)
    s = _ints(node.stride, 2)
    p = _ints(node.padding, 2)
    c, h, w = x.shape
    oh = (h + 2 * p[0] - k[0]) // s[0] + 1
    ow = (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.zeros((c, oh, ow))
    for ch in range(c):
        for i in range(oh):
            for j in range(ow):
                total = 0.0
                for a in range(k[0]):
                    for b in range(k[1]):
                        r, q = i * s[0] - p[0] + a, j * s[1] - p[1] + b
                        if 0 <= r < h and 0 <= q < w:
                            total += float(x[ch, r, q])
                y[ch, i, j] = total / (k[0] * k[1]) if average else total
    return y


def _flatten_sample(node: Any, x: np.ndarray) -> np.ndarray:
    n = x.ndim
    start = int(node.start_dim) + n if int(node.start_dim) < 0 else int(node.start_dim)
    end = int(node.end_dim) + n if int(node.end_dim) < 0 else int(node.end_dim)
    merged = 1
    for d in range(start, end + 1):
        merged *= x.shape[d]
    return x.reshape(*x.shape[:start], merged, *x.shape[end + 1 :])


def _elementwise(x: np.ndarray, param: Any, fn) -> np.ndarray:
    flat = x.reshape(-1)
    values = _per_element(param, x.shape)
    return np.array([fn(float(flat[i]), values[i]) for i in range(flat.size)]).reshape(x.shape)


def _stateless(kind: str, node: Any, x: np.ndarray) -> np.ndarray:
    if kind in ("Input", "Output"):
        return x
    if kind == "Affine":
        return _affine(node, x, with_bias=True)
    if kind == "Linear":
        return _affine(node, x, with_bias=False)
    if kind == "Scale":
        return _elementwise(x, node.scale, lambda v, s: s * v)
    if kind == "Threshold":
        return _elementwise(x, node.threshold, lambda v, th: 1.0 if v > th else 0.0)
    if kind == "Conv1d":
        return _conv(node, x, 1)
    if kind == "Conv2d":
        return _conv(node, x, 2)
    if kind == "SumPool2d":
        return _pool(node, x, average=False)
    if kind == "AvgPool2d":
        return _pool(node, x, average=True)
    if kind == "Flatten":
        return _flatten_sample(node, x)
    raise NotImplementedError(kind)


# -- §4-5: stateful nodes, one neuron at a time -------------------------------------------------------
class _Neuron:
    def __init__(self, kind: str, node: Any, shape: tuple[int, ...], dt: float) -> None:
        self.kind, self.dt, self.shape = kind, dt, shape
        get = lambda name, default=0.0: _per_element(getattr(node, name, None), shape, default)  # noqa: E731
        self.r = get("r", 1.0)
        self.v_leak = get("v_leak")
        self.v_threshold = get("v_threshold")
        self.v_reset = get("v_reset")
        self.w_in = get("w_in", 1.0)
        self.tau = get("tau_mem" if kind.startswith("Cuba") else "tau", 1.0)
        self.tau_syn = get("tau_syn", 1.0)
        contract = _contract(node)
        self.reset = _text(contract.get("reset", "value"))
        # §4 signed spikes: a flag (stored by HDF5 as a numpy bool) and a net count per neuron.
        self.signed = _text(contract.get("signed", False)) in ("True", "1")
        self.v = _per_element(contract.get("v_init"), shape)
        self.i = _per_element(contract.get("i_init"), shape)
        self.count = [0] * len(self.v)

    def step(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(-1)
        out = []
        dt = self.dt
        for n in range(flat.size):
            drive = float(flat[n])
            if self.kind in ("CubaLI", "CubaLIF"):
                self.i[n] = self.i[n] + dt / self.tau_syn[n] * (-self.i[n] + self.w_in[n] * drive)
                drive = self.i[n]  # the voltage sees the new current
            if self.kind in ("I", "IF"):
                self.v[n] = self.v[n] + dt * self.r[n] * drive
            else:
                self.v[n] = self.v[n] + dt / self.tau[n] * (self.v_leak[n] - self.v[n] + self.r[n] * drive)
            if self.kind not in SPIKING:
                out.append(self.v[n])
                continue
            if self.signed:
                out.append(self._signed(n))
                continue
            spike = self.v[n] > self.v_threshold[n]
            if spike and self.reset == "subtract":
                self.v[n] = self.v[n] - self.v_threshold[n]
            elif spike:
                self.v[n] = self.v_reset[n]
            out.append(1.0 if spike else 0.0)
        return np.array(out).reshape(x.shape)

    def _signed(self, n: int) -> float:
        """§4: +1 above threshold, else -1 at or below 0 while the net count is positive; subtract."""
        if self.v[n] > self.v_threshold[n]:
            s = 1
        elif self.v[n] <= 0.0 and self.count[n] > 0:
            s = -1
        else:
            s = 0
        self.v[n] = self.v[n] - self.v_threshold[n] * s
        self.count[n] += s
        return float(s)


class _Delay:
    def __init__(self, node: Any, shape: tuple[int, ...], dt: float) -> None:
        self.steps = [int(round(d / dt)) for d in _per_element(node.delay, shape)]
        self.past: list[np.ndarray] = []

    def step(self, x: np.ndarray) -> np.ndarray:
        self.past.append(x.reshape(-1).copy())
        t = len(self.past) - 1
        out = [self.past[t - k][n] if t - k >= 0 else 0.0 for n, k in enumerate(self.steps)]
        return np.array(out).reshape(x.shape)


# -- §3: the driver -----------------------------------------------------------------------------------
def run(graph: nir.NIRGraph, inputs: dict[str, np.ndarray] | np.ndarray, dt: float | None = None) -> dict[str, np.ndarray]:
    """Run ``graph`` on time-major ``inputs``; returns every flattened node's ``(T, batch, *shape)`` trace."""
    step = _dt(graph) if dt is None else float(dt)
    nodes, edges = _flatten(graph)
    order, delayed = _schedule(nodes, edges)
    input_nodes = [n for n in order if type(nodes[n]).__name__ == "Input"]
    if not isinstance(inputs, dict):
        inputs = {input_nodes[0]: inputs}
    T, batch = np.asarray(next(iter(inputs.values()))).shape[:2]
    incoming = {n: [a for a, b in edges if b == n] for n in nodes}
    states: dict[tuple[str, int], Any] = {}
    traces: dict[str, list] = {n: [] for n in nodes}
    for t in range(T):
        for name in order:
            kind = type(nodes[name]).__name__
            per_sample = []
            for b in range(batch):
                if kind == "Input" and not incoming[name]:
                    per_sample.append(np.asarray(inputs[name][t][b], dtype=np.float64))
                    continue
                total = None
                for src in incoming[name]:
                    if (src, name) not in delayed:
                        value = traces[src][t][b]  # this step's value
                    elif t > 0:
                        value = traces[src][t - 1][b]  # closes a cycle: last step's value
                    else:
                        continue  # zeros at t = 0
                    total = value.copy() if total is None else total + value
                if total is None:
                    raise NotImplementedError(f"{name}: every input is delayed at t=0")
                if kind in ("Delay", "I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"):
                    key = (name, b)
                    if key not in states:
                        states[key] = (
                            _Delay(nodes[name], total.shape, step) if kind == "Delay"
                            else _Neuron(kind, nodes[name], total.shape, step)
                        )
                    per_sample.append(states[key].step(total))
                else:
                    per_sample.append(_stateless(kind, nodes[name], total))
            traces[name].append(per_sample)
    return {n: np.array([[np.asarray(s) for s in row] for row in rows]) for n, rows in traces.items()}
