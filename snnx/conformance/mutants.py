"""Mutation testing of the conformance suite: ``python -m snnx.conformance.mutants``.

A golden trace that does not change when a rule of ``specs/semantics.md`` is broken does not test that
rule. Each :class:`Mutant` here breaks one rule in the reference simulator (``>=`` instead of ``>``,
``v_reset`` ignored, the membrane updated with the old synaptic current, the wrong cycle edge delayed,
``Delay`` rounded down, ...) by monkeypatching ``snnx.ir``; the harness runs every conformance case with
the mutant in place and compares the result with the stored golden traces by the rule of §8. A mutant
is *killed* when at least one case disagrees (or crashes), and *survives* otherwise. The module exits
with status 1 when any mutant survives; ``tests/test_mutants.py`` runs it in CI.

The same harness measures a backend's suite, or a plugin's own folds: pass ``run=backend_runner(NAME)``
(the conformance cases run through that backend) and mutants that patch the plugin's code::

    from snnx.conformance.mutants import Mutant, backend_runner, patched, survivors

    mutants = [Mutant("fold drops v_reset", "§4 reset", lambda: patched(myplugin.fold, "V_RESET", 0.0))]
    assert not survivors(mutants, run=backend_runner("mybackend"))
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import importlib

from snnx.ir import dynamics, nodes, ops, shapes
from snnx.ir.dynamics import DelayState, NeuronState

prepare = importlib.import_module("snnx.ir.prepare")
schedule = importlib.import_module("snnx.ir.schedule")

#: ``run(case) -> {output: trace}``: how a case is executed (the reference by default).
Runner = Callable[[Any], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Mutant:
    """One named violation of the contract.

    :ivar name: short identifier (``"spike >= threshold (LIF)"``).
    :ivar rule: the part of ``specs/semantics.md`` it breaks.
    :ivar patch: a zero-argument callable returning a context manager that applies the mutation.
    """

    name: str
    rule: str
    patch: Callable[[], contextlib.AbstractContextManager]


@dataclass
class Outcome:
    """What happened to one mutant: killed by ``case`` (or by a crash in it), or survived."""

    mutant: Mutant
    killed_by: str | None = None
    crashed: bool = False

    @property
    def killed(self) -> bool:
        return self.killed_by is not None


@contextlib.contextmanager
def patched(obj: Any, attr: str, value: Any) -> Iterator[None]:
    """Set ``obj.attr = value`` (or ``obj[attr]`` for a dict) for the duration of the block."""
    if isinstance(obj, dict):
        old = obj[attr]
        obj[attr] = value
        try:
            yield
        finally:
            obj[attr] = old
        return
    missing = object()
    old = getattr(obj, attr, missing)
    setattr(obj, attr, value)
    try:
        yield
    finally:
        if old is missing:
            delattr(obj, attr)
        else:
            setattr(obj, attr, old)


@contextlib.contextmanager
def _all(*managers: contextlib.AbstractContextManager) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for m in managers:
            stack.enter_context(m)
        yield


# -- neuron mutations: a knob-driven copy of NeuronState.step ----------------------------------------
_ORIGINAL_STEP = NeuronState.step
_f = ops.f64


def _mutated_step(self: NeuronState, x: np.ndarray, knobs: frozenset[str]) -> np.ndarray:
    """``NeuronState.step`` with the named rules broken (an empty ``knobs`` is the unmutated step)."""
    node, dt = self.node, self.dt
    if self.cuba:
        tau_syn = _f(node.tau_mem) if "swap-taus" in knobs else _f(node.tau_syn)
        w_in = 1.0 if "no-w_in" in knobs else _f(node.w_in)
        i_old = self.i
        self.i = self.i + (dt / tau_syn) * (-self.i + w_in * x)
        x = i_old if "old-current" in knobs else self.i
    r = 1.0 if "no-r" in knobs else _f(node.r)
    v_old = self.v
    if self.tau is None:
        self.v = self.v + (1.0 if "no-dt" in knobs else dt) * r * x
    else:
        tau = _f(node.tau_syn) if "swap-taus" in knobs else self.tau
        leak = 0.0 if "no-v_leak" in knobs else _f(node.v_leak)
        alpha = (1.0 - np.exp(-dt / tau)) if "exp-decay" in knobs else dt / tau
        inside = (leak - self.v + x) * r if "r-on-leak" in knobs else (leak - self.v + r * x)
        self.v = self.v + alpha * inside
    if self.reset is None:
        return (v_old if "stale-output" in knobs else self.v).copy()
    vth = _f(node.v_threshold)
    if self.signed:  # the signed rule has mutants of its own (_signed_mutant)
        return self._signed_spikes(vth)
    probe = v_old if "spike-before-update" in knobs else self.v
    spikes = probe >= vth if "ge" in knobs else probe > vth
    mode = self.reset
    if mode == "subtract" and "subtract-as-value" in knobs:
        mode = "value"
    elif mode == "value" and "value-as-subtract" in knobs:
        mode = "subtract"
    if "no-reset" in knobs:
        pass
    elif mode == "subtract":
        self.v = self.v - (1.0 if "subtract-one" in knobs else vth) * spikes
    else:
        self.v = np.where(spikes, 0.0 if "no-v_reset" in knobs else _f(node.v_reset), self.v)
    if "reset-current" in knobs and self.cuba:
        self.i = np.where(spikes, 0.0, self.i)
    return spikes.astype(np.float64)


def neuron(knob: str, kinds: Iterable[str]) -> Callable[[], contextlib.AbstractContextManager]:
    """A patch that breaks rule ``knob`` of the neuron update for node kinds ``kinds`` only."""
    chosen = frozenset(kinds)

    def step(self: NeuronState, x: np.ndarray) -> np.ndarray:
        if type(self.node).__name__ in chosen:
            return _mutated_step(self, x, frozenset({knob}))
        return _ORIGINAL_STEP(self, x)

    return lambda: patched(NeuronState, "step", step)


def _signed_mutant(knob: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A patch of the signed spike rule (§4, version 2) that breaks one of its parts."""

    def signed(self: NeuronState, vth: np.ndarray) -> np.ndarray:
        pos = self.v > vth
        below = self.v < 0 if knob == "strict-zero" else self.v <= 0
        guard = True if knob == "no-count-guard" else self.n > 0
        neg = ~pos & below & guard if knob != "unsigned" else np.zeros_like(pos)
        s = pos.astype(np.float64) - neg.astype(np.float64)
        self.v = self.v - vth * (pos if knob == "no-take-back-reset" else s)
        self.n = self.n + s
        return s

    return lambda: patched(NeuronState, "_signed_spikes", signed)


def _no_init(reader: str, kinds: Iterable[str]) -> Callable[[], contextlib.AbstractContextManager]:
    chosen = frozenset(kinds)
    original = getattr(dynamics, reader)

    def read(node: Any) -> np.ndarray:
        return np.zeros(()) if type(node).__name__ in chosen else original(node)

    return lambda: patched(dynamics, reader, read)


# -- stateless node mutations: replace a kind's operator in the node table ---------------------------
def kind_apply(name: str, fn: Callable[[Any, np.ndarray], np.ndarray]) -> Callable[[], contextlib.AbstractContextManager]:
    """A patch that gives node kind ``name`` the operator ``fn(node, x)`` in :data:`snnx.ir.nodes.KINDS`."""

    def manager() -> contextlib.AbstractContextManager:
        kind = nodes.KINDS[name]
        mutated = dataclasses.replace(kind, apply=fn)
        return _all(patched(nodes.KINDS, name, mutated), patched(nodes._BY_CLASS, kind.cls, mutated))

    return manager


def _avg_exclude_padding(node: Any, x: np.ndarray) -> np.ndarray:
    return ops.sum_pool(node, x) / ops.sum_pool(node, np.ones_like(x))


def _flatten_fortran(node: Any, x: np.ndarray) -> np.ndarray:
    out = shapes.flatten_shape(x.shape[1:], int(node.start_dim), int(node.end_dim))
    return np.stack([xi.reshape(out, order="F") for xi in x])


def _flatten_counting_batch(node: Any, x: np.ndarray) -> np.ndarray:
    return x.reshape(shapes.flatten_shape(x.shape, int(node.start_dim), int(node.end_dim)))


def _linear_transposed(node: Any, x: np.ndarray) -> np.ndarray:
    w = _f(node.weight)
    return x @ (w if w.shape[0] == w.shape[1] else w.T)


def _conv_wrapper(transform: Callable[[np.ndarray, Any, int], tuple[np.ndarray, Any]]):
    original = ops.conv_nd

    def conv_nd(x: np.ndarray, node: Any, nd: int) -> np.ndarray:
        x, node = transform(x, node, nd)
        return original(x, node, nd)

    return lambda: patched(ops, "conv_nd", conv_nd)


def _with(node: Any, **changes: Any) -> Any:
    import copy

    new = copy.copy(node)
    for k, v in changes.items():
        setattr(new, k, v)
    return new


def _conv_flipped(x, node, nd):
    w = _f(node.weight)
    return x, _with(node, weight=np.flip(w, axis=tuple(range(2, 2 + nd))).copy())


def _conv_no_bias(x, node, nd):
    return x, _with(node, bias=np.zeros_like(_f(node.bias)))


def _conv_groups_reversed(x, node, nd):
    groups = int(np.asarray(node.groups))
    if groups > 1:
        c = x.shape[1]
        blocks = x.reshape(x.shape[0], groups, c // groups, *x.shape[2:])
        x = blocks[:, ::-1].reshape(x.shape)
    return x, node


def _padding_wrapper(fn):
    original = ops.conv_padding

    def conv_padding(node, kernel, dilation, path="conv"):
        return fn(node, original(node, kernel, dilation, path))

    return lambda: patched(ops, "conv_padding", conv_padding)


def _pad_all_before(node, pads):
    return tuple((a + b, 0) for a, b in pads)


def _same_ceil_first(node, pads):
    pad = node.padding
    if isinstance(pad, (str, bytes, np.ndarray)) and "same" in str(pad):
        return tuple((b, a) for a, b in pads)
    return pads


def _sum_pool_pad_before(node: Any, x: np.ndarray) -> np.ndarray:
    k, s, p = shapes.pool_geometry(node)
    x = np.pad(x, ((0, 0), (0, 0), (2 * p[0], 0), (2 * p[1], 0)))
    from numpy.lib.stride_tricks import sliding_window_view

    return sliding_window_view(x, k, axis=(2, 3))[:, :, :: s[0], :: s[1]].sum(axis=(-2, -1))


# -- delay, fan-in, schedule, dt -----------------------------------------------------------------------
def _delay_steps(rounding: Callable[[np.ndarray], np.ndarray]):
    original = DelayState.__init__

    def init(self, node, dt, x0, *, spiking=False):
        original(self, node, dt, x0, spiking=spiking)
        self.steps = rounding(_f(node.delay) / dt).astype(np.int64)
        self.max_depth = int(self.steps.max(initial=0)) + 1
        self.history = np.zeros((self.max_depth, *x0.shape))

    return lambda: patched(DelayState, "__init__", init)


def _schedule_wrapper(fn: Callable[[schedule.Schedule], schedule.Schedule]):
    original = prepare.schedule

    def mutated(graph):
        return fn(original(graph))

    return lambda: patched(prepare, "schedule", mutated)


def _preds(keep: Callable[[tuple[tuple[str, bool], ...]], tuple[tuple[str, bool], ...]]):
    def fn(s: schedule.Schedule) -> schedule.Schedule:
        return dataclasses.replace(s, preds={k: keep(v) for k, v in s.preds.items()})

    return _schedule_wrapper(fn)


def _back_edges(rule: Callable[[dict, dict, Callable], set]):
    original = schedule.back_edges

    def mutated(succs, depth):
        return rule(succs, depth, original)

    return lambda: patched(schedule, "back_edges", mutated)


def _dfs_by_name(succs, depth, original):
    """The pre-version-2 rule: DFS from the inputs in name order; edges to a node on the stack."""
    back, on_stack, done = set(), set(), set()

    def visit(n):
        on_stack.add(n)
        for m in sorted(succs[n]):
            if m in on_stack:
                back.add((n, m))
            elif m not in done:
                visit(m)
        on_stack.discard(n)
        done.add(n)

    for root in sorted(n for n, d in depth.items() if d == 0):
        if root not in done:
            visit(root)
    return back


def _depth_only(succs, depth, original):
    """Every edge towards the inputs is delayed, on a cycle or not."""
    return {(u, v) for u, vs in succs.items() for v in vs if depth[v] <= depth[u]}


def _one_per_cycle(succs, depth, original):
    """Only the first (by name) of the delayed edges of each strongly connected component is delayed."""
    comp = schedule._components(succs)
    first: dict[int, tuple[str, str]] = {}
    for u, v in sorted(original(succs, depth)):
        first.setdefault(comp[u], (u, v))
    return set(first.values())


def _module_attr(module: Any, attr: str, value: Any) -> Callable[[], contextlib.AbstractContextManager]:
    return lambda: patched(module, attr, value)


SPIKING = ("IF", "LIF", "CubaLIF")
LEAKY = ("LI", "LIF", "CubaLI", "CubaLIF")
NEURONS = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF")
CUBA = ("CubaLI", "CubaLIF")


def _per_kind(label: str, rule: str, knob: str, kinds: Iterable[str]) -> list[Mutant]:
    return [Mutant(f"{label} ({k})", rule, neuron(knob, [k])) for k in kinds]


def all_mutants() -> list[Mutant]:
    """Every named violation of ``specs/semantics.md`` the suite must detect."""
    m: list[Mutant] = []
    m += _per_kind("spike when v >= v_threshold", "§4 strict comparison", "ge", SPIKING)
    m += _per_kind("spike decided on v before the update", "§4 spike after the voltage update", "spike-before-update", SPIKING)
    m += _per_kind("no reset after a spike", "§4 spike and reset", "no-reset", SPIKING)
    m += _per_kind("reset 'value' ignores v_reset (resets to 0)", "§4 reset value", "no-v_reset", SPIKING)
    m += _per_kind("reset 'value' subtracts instead", "§4 reset value", "value-as-subtract", SPIKING)
    m += _per_kind("reset 'subtract' resets to v_reset instead", "§4 reset subtract", "subtract-as-value", SPIKING)
    m += _per_kind("reset 'subtract' subtracts 1 instead of v_threshold", "§4 reset subtract", "subtract-one", SPIKING)
    m += _per_kind("r ignored", "§4 r scales the input", "no-r", NEURONS)
    m += _per_kind("r multiplies v_leak - v too", "§4 r scales only the input", "r-on-leak", LEAKY)
    m += _per_kind("v_leak ignored", "§4 v_leak", "no-v_leak", LEAKY)
    m += _per_kind("exact exponential decay instead of dt/tau", "§4 forward Euler", "exp-decay", LEAKY)
    m += _per_kind("integrator ignores dt", "§4 I/IF: v += dt*r*x", "no-dt", ("I", "IF"))
    m += _per_kind("output v before the update", "§4 y is the new v", "stale-output", ("I", "LI", "CubaLI"))
    m += _per_kind("w_in ignored", "§4 Cuba w_in", "no-w_in", CUBA)
    m += _per_kind("voltage updated with the old current", "§4 Cuba update order", "old-current", CUBA)
    m += _per_kind("tau_syn and tau_mem swapped", "§4 Cuba time constants", "swap-taus", CUBA)
    m += [Mutant("synaptic current reset on a spike (CubaLIF)", "§4 i is not reset", neuron("reset-current", ["CubaLIF"]))]
    m += [
        Mutant("signed flag ignored (no -1 spikes)", "§4 signed spikes", _signed_mutant("unsigned")),
        Mutant("signed: -1 only where v < 0 (strict)", "§4 signed spikes v <= 0", _signed_mutant("strict-zero")),
        Mutant("signed: takes back spikes it never fired", "§4 signed spikes n > 0", _signed_mutant("no-count-guard")),
        Mutant("signed: a -1 spike leaves v unchanged", "§4 signed spikes v -= v_threshold*s", _signed_mutant("no-take-back-reset")),
    ]
    m += [Mutant(f"v_init ignored ({k})", "§5 initial state v_init", _no_init("v_init_of", [k])) for k in NEURONS]
    m += [Mutant(f"i_init ignored ({k})", "§5 initial state i_init", _no_init("i_init_of", [k])) for k in CUBA]
    m += [
        Mutant("Affine bias ignored", "§4 Affine", kind_apply("Affine", ops.linear)),
        Mutant("Linear weight transposed (square weights)", "§4 Linear y = W x", kind_apply("Linear", _linear_transposed)),
        Mutant("Scale ignored", "§4 Scale", kind_apply("Scale", ops.identity)),
        Mutant("Scale divides", "§4 Scale", kind_apply("Scale", lambda n, x: x / _f(n.scale))),
        Mutant("Threshold uses >=", "§4 Threshold strict", kind_apply("Threshold", lambda n, x: (x >= _f(n.threshold)).astype(float))),
        Mutant("Threshold compares with 0", "§4 Threshold", kind_apply("Threshold", lambda n, x: (x > 0).astype(float))),
        Mutant("AvgPool2d divisor excludes padding", "§4 AvgPool2d count_include_pad", kind_apply("AvgPool2d", _avg_exclude_padding)),
        Mutant("AvgPool2d without divisor (SumPool2d)", "§4 AvgPool2d", kind_apply("AvgPool2d", ops.sum_pool)),
        Mutant("SumPool2d divides (AvgPool2d)", "§4 SumPool2d", kind_apply("SumPool2d", ops.avg_pool)),
        Mutant("SumPool2d padding all before", "§4 SumPool2d padding", kind_apply("SumPool2d", _sum_pool_pad_before)),
        Mutant("Flatten in column-major order", "§4 Flatten", kind_apply("Flatten", _flatten_fortran)),
        Mutant("Flatten dims count the batch", "§4 Flatten per-sample dims", kind_apply("Flatten", _flatten_counting_batch)),
        Mutant("conv is a convolution (kernel flipped)", "§4 Conv cross-correlation", _conv_wrapper(_conv_flipped)),
        Mutant("conv bias ignored", "§4 Conv bias", _conv_wrapper(_conv_no_bias)),
        Mutant("conv groups take the wrong input channels", "§4 Conv groups", _conv_wrapper(_conv_groups_reversed)),
        Mutant("conv padding all before", "§4 Conv padding", _padding_wrapper(_pad_all_before)),
        Mutant("conv 'same' puts the larger half before", "§4 Conv padding='same'", _padding_wrapper(_same_ceil_first)),
        Mutant("Delay rounds down", "§4 Delay round(d/dt)", _delay_steps(np.floor)),
        Mutant("Delay rounds up", "§4 Delay round(d/dt)", _delay_steps(np.ceil)),
        Mutant("Delay one step too long", "§4 Delay", _delay_steps(lambda s: np.rint(s) + 1)),
        Mutant("fan-in keeps only the first edge", "§3 fan-in sums", _preds(lambda p: p[:1])),
        Mutant("fan-in keeps only the last edge", "§3 fan-in sums", _preds(lambda p: p[-1:])),
        Mutant("cycle edges carry zeros (cycle cut)", "§3 cycle edge carries t-1", _preds(lambda p: tuple(e for e in p if not e[1]) or p)),
        Mutant("cycle edges chosen by a name-ordered DFS (version 1)", "§6 which cycle edge is delayed", _back_edges(_dfs_by_name)),
        Mutant("edges towards the inputs delayed outside cycles too", "§6 only edges on a cycle", _back_edges(_depth_only)),
        Mutant("one delayed edge per cycle, chosen by name", "§6 every entry's edge is delayed", _back_edges(_one_per_cycle)),
        Mutant("stored dt ignored (default dt)", "§1 dt", _module_attr(prepare, "dt_of", lambda graph, default=None: 1e-4)),
    ]
    return m


# -- the harness ----------------------------------------------------------------------------------------
def reference_runner(case: Any) -> dict[str, np.ndarray]:
    """Run a conformance case on the reference simulator (re-prepared, so patches take effect)."""
    from snnx.ir.reference import simulate

    return simulate(case.graph, case.inputs)


def backend_runner(name: str) -> Runner:
    """Run conformance cases through backend ``name`` (lower + run); a refused case returns ``{}``."""

    def run(case: Any) -> dict[str, np.ndarray]:
        from snnx.api import prepare as prepare_graph
        from snnx.plugins import get_backend

        backend = get_backend(name)
        prepared = prepare_graph(case.graph)
        if backend.refusals(prepared):
            return {}
        return backend.run(backend.lower(prepared), case.inputs)

    return run


def _differs(case: Any, got: dict[str, np.ndarray]) -> bool:
    from snnx.api import compare

    if not got:
        return False
    return compare(case.graph, case.expected, got, "mutant").status != "agree"


def evaluate(mutants: Iterable[Mutant] | None = None, *, run: Runner = reference_runner, cases: list | None = None) -> list[Outcome]:
    """Run every case under every mutant; a mutant is killed by the first case whose traces differ."""
    from snnx.conformance import load_cases

    cases = load_cases() if cases is None else cases
    outcomes = []
    for mutant in all_mutants() if mutants is None else mutants:
        outcome = Outcome(mutant)
        with mutant.patch():
            for case in cases:
                try:
                    got = run(case)
                except Exception:  # noqa: BLE001 - a crash under the mutant is a detection too
                    outcome.killed_by, outcome.crashed = case.name, True
                    break
                if _differs(case, got):
                    outcome.killed_by = case.name
                    break
        outcomes.append(outcome)
    return outcomes


def survivors(mutants: Iterable[Mutant] | None = None, *, run: Runner = reference_runner) -> list[Mutant]:
    """The mutants no conformance case detects."""
    return [o.mutant for o in evaluate(mutants, run=run) if not o.killed]


def main(argv: list[str] | None = None) -> int:
    """Print every mutant's fate; exit 1 if any survives."""
    outcomes = evaluate()
    for o in outcomes:
        fate = f"killed by {o.killed_by}" + (" (crash)" if o.crashed else "") if o.killed else "SURVIVED"
        print(f"{fate:45s} {o.mutant.name}  [{o.mutant.rule}]")
    alive = [o for o in outcomes if not o.killed]
    print(f"{len(outcomes) - len(alive)}/{len(outcomes)} mutants killed")
    return 1 if alive else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
