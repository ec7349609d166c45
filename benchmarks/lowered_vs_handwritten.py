#!/usr/bin/env python
"""Training-step time of snnx-lowered models vs hand-written models of the same framework vs nirtorch.

One NIR graph (a conv SNN, and an MLP) is built here with ``nir`` nodes and an explicit snnx contract.
For snnTorch, Norse and SpikingJelly the script times, in one run and interleaved round by round:

- ``lowered``:     ``snnx.lower(graph, to=NAME)``;
- ``handwritten``: the same network written the way that framework's tutorials write it (snnTorch:
  ``snn.Leaky`` stepped in a Python loop with per-step ``nn.Conv2d``/``nn.Linear``, tutorial 7; Norse:
  ``LIFBoxCell`` stepped in a loop with per-step layers; SpikingJelly: ``layer.*`` + ``neuron.LIFNode``
  in multi-step mode with ``functional.set_step_mode``/``functional.reset_net``), given the graph's
  weights and neuron parameters;
- ``nirtorch``:    ``nirtorch.nir_to_torch(graph, node_map)`` (nirtorch 2.x builds a one-step
  ``torch.fx`` module that is called once per time step with an explicit state dict), with a node map
  made of the framework's own neuron modules.

Before timing, the output spikes of the hand-written and nirtorch models are compared with the lowered
model's on the benchmark input (equal work is only claimed when they are identical).

A training step is: forward over ``T`` steps, cross-entropy on the output spike counts, backward
(gradients are dropped with ``set_to_none`` before each step; no optimiser update, so every step does
the same work). Reported: the median over rounds of the mean ms per step within a round.

    .venv/bin/python benchmarks/lowered_vs_handwritten.py            # full (~10 min on 2 cores)
    .venv/bin/python benchmarks/lowered_vs_handwritten.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

import snnx
from snnx.ir.semantics import set_graph_contract, set_node_contract

FRAMEWORKS = ("snntorch", "norse", "spikingjelly")
VARIANTS = ("lowered", "handwritten", "nirtorch")
DT = 1e-3
N_CLASSES = 10


# -- the NIR graphs ---------------------------------------------------------------------------------------
def _lif(shape: tuple[int, ...], tau: float, v_threshold: float) -> nir.LIF:
    """A uniform LIF population, r = 1, v_leak = 0, v_reset = 0, reset "value", v_init = 0."""
    full = lambda v: np.full(shape, v, dtype=np.float32)  # noqa: E731
    node = nir.LIF(tau=full(tau), r=full(1.0), v_leak=full(0.0), v_threshold=full(v_threshold),
                   v_reset=full(0.0))
    return set_node_contract(node, reset="value", v_init=0.0)


def _stored(taus: tuple[float, ...]) -> tuple[float, ...]:
    """The time constants as the graph stores them (float32), for the hand-written models."""
    return tuple(float(np.float32(t)) for t in taus)


def _w(rng: np.random.Generator, shape: tuple[int, ...], gain: float, mean: float = 0.0) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    return (rng.normal(mean, 1.0, size=shape) * gain / np.sqrt(fan_in)).astype(np.float32)


def conv_graph(seed: int = 0) -> tuple[nir.NIRGraph, dict]:
    """Input(2,16,16)-Conv2d(16,3x3,pad 1)-LIF-SumPool2d(2)-Conv2d(32,3x3,pad 1)-LIF-Flatten-Affine(10)-LIF."""
    rng = np.random.default_rng(seed)
    c0, c1, c2, hw = 2, 16, 32, 16
    taus = (5e-3, 1e-2, 2e-2)
    thr = 1.0
    w1 = _w(rng, (c1, c0, 3, 3), 4.0, 0.3)
    w2 = _w(rng, (c2, c1, 3, 3), 3.0, 0.3)
    w3 = _w(rng, (N_CLASSES, c2 * (hw // 2) ** 2), 3.0, 0.1)
    b1 = (0.05 * rng.normal(size=c1)).astype(np.float32)
    b2 = (0.05 * rng.normal(size=c2)).astype(np.float32)
    b3 = (0.05 * rng.normal(size=N_CLASSES)).astype(np.float32)
    one = np.array([1, 1])
    nodes = {
        "input": nir.Input(input_type=np.array([c0, hw, hw])),
        "conv1": nir.Conv2d(input_shape=(hw, hw), weight=w1, stride=one, padding=one, dilation=one,
                            groups=1, bias=b1),
        "lif1": _lif((c1, hw, hw), taus[0], thr),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d(input_shape=(hw // 2, hw // 2), weight=w2, stride=one, padding=one, dilation=one,
                            groups=1, bias=b2),
        "lif2": _lif((c2, hw // 2, hw // 2), taus[1], thr),
        "flat": nir.Flatten(input_type={"input": np.array([c2, hw // 2, hw // 2])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=w3, bias=b3),
        "lif3": _lif((N_CLASSES,), taus[2], thr),
        "output": nir.Output(output_type=np.array([N_CLASSES])),
    }
    order = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False)
    spec = {"kind": "conv", "in_shape": (c0, hw, hw), "taus": _stored(taus), "thr": thr,
            "conv": [(w1, b1), (w2, b2)], "fc": [(w3, b3)]}
    return set_graph_contract(graph, dt=DT), spec


def mlp_graph(seed: int = 1) -> tuple[nir.NIRGraph, dict]:
    """Input(256)-Affine(256)-LIF-Affine(256)-LIF-Affine(10)-LIF."""
    rng = np.random.default_rng(seed)
    sizes = (256, 256, 256, N_CLASSES)
    taus = (5e-3, 1e-2, 2e-2)
    thr = 1.0
    gains = (3.0, 7.0, 18.0)
    fc = []
    for (n_in, n_out), gain in zip(zip(sizes[:-1], sizes[1:]), gains):
        fc.append((_w(rng, (n_out, n_in), gain, 0.1), (0.05 * rng.normal(size=n_out)).astype(np.float32)))
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array([sizes[0]]))}
    for i, ((w, b), tau) in enumerate(zip(fc, taus), 1):
        nodes[f"fc{i}"] = nir.Affine(weight=w, bias=b)
        nodes[f"lif{i}"] = _lif((w.shape[0],), tau, thr)
    nodes["output"] = nir.Output(output_type=np.array([N_CLASSES]))
    order = list(nodes)
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False)
    spec = {"kind": "mlp", "in_shape": (sizes[0],), "taus": _stored(taus), "thr": thr, "conv": [], "fc": fc}
    return set_graph_contract(graph, dt=DT), spec


def _linear(w: np.ndarray, b: np.ndarray, cls: type = nn.Linear) -> nn.Module:
    layer = cls(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def _conv(w: np.ndarray, b: np.ndarray, cls: type = nn.Conv2d) -> nn.Module:
    layer = cls(w.shape[1], w.shape[0], kernel_size=3, padding=1)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def _scale(tau: float) -> float:
    """The per-step input factor ``dt/tau * r`` (r = 1) as the lowering computes it (float64)."""
    return DT / tau * 1.0


# -- hand-written snnTorch (tutorial 7 style) -----------------------------------------------------------
class SnnTorchHand(nn.Module):
    """snnTorch tutorial style: ``snn.Leaky`` and per-step layers in a Python loop over time.

    Contract LIF with r = 1, v_leak = 0, v_reset = 0, reset "value" is snnTorch's
    ``mem = beta*mem + (dt/tau)*I`` with ``beta = 1 - dt/tau`` and ``reset_mechanism="zero"``
    (snnTorch's delayed zero reset is the contract's reset to 0; specs/backends/snntorch.md).
    """

    def __init__(self, spec: dict) -> None:
        import snntorch as snn
        from snntorch import surrogate

        super().__init__()
        self.kind = spec["kind"]
        self.convs = nn.ModuleList(_conv(w, b) for w, b in spec["conv"])
        self.fcs = nn.ModuleList(_linear(w, b) for w, b in spec["fc"])
        self.pool = nn.AvgPool2d(2, divisor_override=1)  # SumPool2d
        self.scales = [_scale(t) for t in spec["taus"]]
        grad = surrogate.atan()
        self.lifs = nn.ModuleList(
            snn.Leaky(beta=1.0 - _scale(t), threshold=spec["thr"], spike_grad=grad, reset_mechanism="zero")
            for t in spec["taus"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = [lif.init_leaky() for lif in self.lifs]
        spk_rec = []
        s1, s2, s3 = self.scales
        l1, l2, l3 = self.lifs
        for step in range(x.shape[0]):
            if self.kind == "conv":
                cur1 = self.convs[0](x[step]) * s1
                spk1, mems[0] = l1(cur1, mems[0])
                cur2 = self.convs[1](self.pool(spk1)) * s2
                spk2, mems[1] = l2(cur2, mems[1])
                cur3 = self.fcs[0](spk2.flatten(1)) * s3
            else:
                cur1 = self.fcs[0](x[step]) * s1
                spk1, mems[0] = l1(cur1, mems[0])
                cur2 = self.fcs[1](spk1) * s2
                spk2, mems[1] = l2(cur2, mems[1])
                cur3 = self.fcs[2](spk2) * s3
            spk3, mems[2] = l3(cur3, mems[2])
            spk_rec.append(spk3)
        return torch.stack(spk_rec)


# -- hand-written Norse (LIFBoxCell stepped in a loop) --------------------------------------------------
class NorseHand(nn.Module):
    """Norse style: ``LIFBoxCell`` (``v += dt*tau_inv*(v_leak - v + x)``) and per-step layers in a loop."""

    def __init__(self, spec: dict) -> None:
        from norse.torch import LIFBoxCell, LIFBoxParameters

        super().__init__()
        self.kind = spec["kind"]
        self.convs = nn.ModuleList(_conv(w, b) for w, b in spec["conv"])
        self.fcs = nn.ModuleList(_linear(w, b) for w, b in spec["fc"])
        self.pool = nn.AvgPool2d(2, divisor_override=1)
        self.lifs = nn.ModuleList(
            LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(1.0 / t), v_th=torch.tensor(spec["thr"]),
                                        v_leak=torch.tensor(0.0), v_reset=torch.tensor(0.0)), dt=DT)
            for t in spec["taus"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = s2 = s3 = None
        l1, l2, l3 = self.lifs
        out = []
        for step in range(x.shape[0]):
            if self.kind == "conv":
                z, s1 = l1(self.convs[0](x[step]), s1)
                z, s2 = l2(self.convs[1](self.pool(z)), s2)
                z = self.fcs[0](z.flatten(1))
            else:
                z, s1 = l1(self.fcs[0](x[step]), s1)
                z, s2 = l2(self.fcs[1](z), s2)
                z = self.fcs[2](z)
            z, s3 = l3(z, s3)
            out.append(z)
        return torch.stack(out)


# -- hand-written SpikingJelly (multi-step) -------------------------------------------------------------
class SpikingJellyHand(nn.Module):
    """SpikingJelly style: ``nn.Sequential`` of ``layer.*`` and ``neuron.LIFNode(tau=tau/dt)``, multi-step.

    ``LIFNode(decay_input=True, v_reset=0)``: ``H = V + (X - V)/tau_SJ``, the contract's LIF with r = 1,
    v_leak = 0 for ``tau_SJ = tau/dt``. SpikingJelly fires on ``H >= V_th``, the contract on ``>``; the
    two differ only where ``H == V_th`` exactly (checked on the benchmark input).
    """

    def __init__(self, spec: dict) -> None:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        super().__init__()

        def lif(tau: float) -> nn.Module:
            return neuron.LIFNode(tau=tau / DT, decay_input=True, v_threshold=spec["thr"], v_reset=0.0,
                                  surrogate_function=surrogate.Sigmoid())

        def conv(w: np.ndarray, b: np.ndarray) -> nn.Module:
            return _conv(w, b, cls=layer.Conv2d)

        t1, t2, t3 = spec["taus"]
        if spec["kind"] == "conv":
            (w1, b1), (w2, b2) = spec["conv"]
            (w3, b3), = spec["fc"]
            self.net = nn.Sequential(
                conv(w1, b1), lif(t1), layer.AvgPool2d(2, divisor_override=1),
                conv(w2, b2), lif(t2), layer.Flatten(1), _linear(w3, b3, cls=layer.Linear), lif(t3),
            )
        else:
            (w1, b1), (w2, b2), (w3, b3) = spec["fc"]
            self.net = nn.Sequential(
                _linear(w1, b1, cls=layer.Linear), lif(t1), _linear(w2, b2, cls=layer.Linear), lif(t2),
                _linear(w3, b3, cls=layer.Linear), lif(t3),
            )
        functional.set_step_mode(self.net, "m")
        self._reset = functional.reset_net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._reset(self.net)
        out = self.net(x)
        self._reset(self.net)
        return out


HANDWRITTEN = {"snntorch": SnnTorchHand, "norse": NorseHand, "spikingjelly": SpikingJellyHand}


# -- nirtorch -------------------------------------------------------------------------------------------
class _SnnTorchLeakyState(nn.Module):
    """``snn.Leaky`` behind the ``forward(x, state)`` signature nirtorch uses to detect stateful modules."""

    def __init__(self, node: nir.LIF) -> None:
        import snntorch as snn
        from snntorch import surrogate

        super().__init__()
        a = DT / float(np.asarray(node.tau).flat[0]) * float(np.asarray(node.r).flat[0])
        self.scale = a
        self.leaky = snn.Leaky(beta=1.0 - DT / float(np.asarray(node.tau).flat[0]),
                               threshold=float(np.asarray(node.v_threshold).flat[0]),
                               spike_grad=surrogate.atan(), reset_mechanism="zero")

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        spk, mem = self.leaky(x * self.scale, state if state is not None else torch.zeros_like(x))
        return spk, mem


def _norse_lif(node: nir.LIF) -> nn.Module:
    from norse.torch import LIFBoxCell, LIFBoxParameters

    return LIFBoxCell(LIFBoxParameters(
        tau_mem_inv=torch.tensor(1.0 / float(np.asarray(node.tau).flat[0])),
        v_th=torch.tensor(float(np.asarray(node.v_threshold).flat[0])),
        v_leak=torch.tensor(float(np.asarray(node.v_leak).flat[0])),
        v_reset=torch.tensor(float(np.asarray(node.v_reset).flat[0])),
    ), dt=DT)


def _sj_lif(node: nir.LIF) -> nn.Module:
    from spikingjelly.activation_based import neuron, surrogate

    # single-step node: nirtorch calls it once per time step; its state lives on the module
    return neuron.LIFNode(tau=float(np.asarray(node.tau).flat[0]) / DT, decay_input=True,
                          v_threshold=float(np.asarray(node.v_threshold).flat[0]), v_reset=0.0,
                          surrogate_function=surrogate.Sigmoid(), step_mode="s")


def _nirtorch_fixes() -> dict:
    """Node-map entries replacing nirtorch 2.6 defaults that compute something else on this graph.

    - ``Affine``: the default assigns ``module.weight.bias`` (not ``module.bias``), so the bias stays at
      torch's random init.
    - ``Flatten``: the default is ``nn.Flatten(start_dim=node.start_dim)``, which with NIR's per-sample
      ``start_dim=0`` also flattens the batch dimension.
    """
    def affine(node: nir.Affine) -> nn.Module:
        return _linear(np.asarray(node.weight, np.float32), np.asarray(node.bias, np.float32))

    def flatten(node: nir.Flatten) -> nn.Module:
        return nn.Flatten(start_dim=int(node.start_dim) + 1, end_dim=int(node.end_dim) if node.end_dim < 0
                          else int(node.end_dim) + 1)

    return {nir.Affine: affine, nir.Flatten: flatten}


NIRTORCH_LIF = {"snntorch": _SnnTorchLeakyState, "norse": _norse_lif, "spikingjelly": _sj_lif}


class NirtorchRunner(nn.Module):
    """Loops nirtorch's one-step ``torch.fx`` module over time: ``y, state = m(x[t], state)``."""

    def __init__(self, graph: nir.NIRGraph, framework: str) -> None:
        import nirtorch

        super().__init__()
        node_map = {**_nirtorch_fixes(), nir.LIF: NIRTORCH_LIF[framework]}
        self.framework = framework
        self.module = nirtorch.nir_to_torch(graph, node_map)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.framework == "spikingjelly":
            from spikingjelly.activation_based import functional

            functional.reset_net(self.module)
        state = None
        out = []
        for step in range(x.shape[0]):
            y, state = self.module(x[step], state)
            out.append(y)
        if self.framework == "spikingjelly":
            functional.reset_net(self.module)
        return torch.stack(out)


# -- measuring ------------------------------------------------------------------------------------------
def make_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], float]:
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn = nn.CrossEntropyLoss()

    def step() -> float:
        for p in params:
            p.grad = None
        out = model(x)
        loss = loss_fn(out.sum(0), labels)
        loss.backward()
        return float(loss.detach())

    return step


def build_variants(graph: nir.NIRGraph, spec: dict, framework: str) -> dict[str, nn.Module | str]:
    built: dict[str, nn.Module | str] = {}
    built["lowered"] = snnx.lower(graph, to=framework)
    built["handwritten"] = HANDWRITTEN[framework](spec)
    try:
        built["nirtorch"] = NirtorchRunner(graph, framework)
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not fatal
        built["nirtorch"] = f"cannot load: {type(exc).__name__}: {exc}"
    return built


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict:
    if reference.shape != other.shape:
        return {"equal": False, "reason": f"shape {tuple(other.shape)} != {tuple(reference.shape)}"}
    flips = int((reference != other).sum())
    return {"equal": flips == 0, "spike_mismatches": flips, "elements": reference.numel()}


def run_model(model_name: str, graph: nir.NIRGraph, spec: dict, args: argparse.Namespace) -> list[dict]:
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand((args.steps, args.batch, *spec["in_shape"]), generator=gen) < args.rate).float()
    labels = torch.randint(0, N_CLASSES, (args.batch,), generator=gen)
    rows: dict[tuple[str, str], dict] = {}
    steps: dict[tuple[str, str], Callable[[], float]] = {}
    for fw in args.frameworks:
        built = build_variants(graph, spec, fw)
        lowered = built["lowered"]
        rates: dict[str, float] = {}
        hooks = [
            lowered.layer(n).register_forward_hook(
                lambda _m, _i, o, n=n: rates.__setitem__(n, round(float(o.float().mean()), 4)))
            for n, node in graph.nodes.items() if isinstance(node, nir.LIF)
        ]
        with torch.no_grad():
            ref = lowered(x)
        for h in hooks:
            h.remove()
        for variant in VARIANTS:
            m = built[variant]
            row = {"model": model_name, "framework": fw, "variant": variant}
            if variant == "lowered":
                row["spike_rates"] = rates
            if isinstance(m, str):
                row["status"] = m
            else:
                try:
                    with torch.no_grad():
                        out = m(x)
                    row["check"] = compare(ref, out)
                    row["output_spike_rate"] = float(out.float().mean())
                    steps[(fw, variant)] = make_step(m, x, labels)
                    row["status"] = "ok"
                except Exception as exc:  # noqa: BLE001
                    row["status"] = f"cannot run: {type(exc).__name__}: {exc}"
            rows[(fw, variant)] = row
        print(f"[{model_name}] {fw}: " + ", ".join(
            f"{v}={rows[(fw, v)].get('check', rows[(fw, v)]['status'])}" for v in VARIANTS), flush=True)

    keys = list(steps)
    for key in keys:  # warm-up
        for _ in range(args.warmup):
            steps[key]()
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in range(args.rounds):
        # rotate the order every round so no variant always runs right after the same neighbour
        order = keys[r % len(keys):] + keys[: r % len(keys)]
        for key in order:
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(args.inner):
                steps[key]()
            samples[key].append((time.perf_counter() - t0) / args.inner * 1e3)
    for key in keys:
        s = samples[key]
        rows[key].update({
            "ms_per_step_median": statistics.median(s),
            "ms_per_step_min": min(s),
            "ms_per_step_max": max(s),
            "ms_per_step_samples": [round(v, 3) for v in s],
        })
    return list(rows.values())


def summarise(rows: list[dict], models: list[str], frameworks: list[str]) -> list[dict]:
    table = []
    for model in models:
        for fw in frameworks:
            by = {r["variant"]: r for r in rows if r["model"] == model and r["framework"] == fw}
            ms = {v: by[v].get("ms_per_step_median") for v in VARIANTS}
            entry = {"model": model, "framework": fw, **{f"{v}_ms": ms[v] for v in VARIANTS}}
            for v in ("handwritten", "nirtorch"):
                ok = ms["lowered"] and ms[v]
                entry[f"{v}_over_lowered"] = ms[v] / ms["lowered"] if ok else None
                # the same ratio taken within each round (both ran seconds apart), then the median
                paired = [a / b for a, b in zip(by[v].get("ms_per_step_samples", []),
                                                 by["lowered"].get("ms_per_step_samples", []))]
                entry[f"{v}_over_lowered_paired"] = statistics.median(paired) if paired else None
                entry[f"{v}_over_lowered_paired_iqr"] = (
                    [round(q, 3) for q in np.percentile(paired, [25, 75])] if paired else None)
                entry[f"{v}_status"] = by[v]["status"]
                entry[f"{v}_check"] = by[v].get("check")
            table.append(entry)
    return table


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _check_txt(check: dict | None, status: str) -> str:
    if status != "ok":
        return status
    if check is None:
        return "?"
    if check.get("equal"):
        return "identical"
    if "spike_mismatches" in check:
        return f"{check['spike_mismatches']}/{check['elements']} spikes differ"
    return check.get("reason", "differs")


def _paired(e: dict) -> str:
    r, iqr = e["handwritten_over_lowered_paired"], e["handwritten_over_lowered_paired_iqr"]
    return "-" if r is None else f"{r:.2f} ({iqr[0]:.2f}-{iqr[1]:.2f})"


def markdown(table: list[dict], meta: dict) -> str:
    lines = [
        "# Training-step time: snnx-lowered vs hand-written vs nirtorch",
        "",
        f"T={meta['steps']}, batch={meta['batch']}, torch threads={meta['threads']}, "
        f"{meta['rounds']} rounds x {meta['inner']} steps per variant (interleaved), median of the per-round "
        f"means, in ms per training step (forward over T steps + loss + backward). {meta['timestamp']}, load average {meta['loadavg_start']} -> {meta['loadavg_end']}.",
        "",
        "Ratio = other / lowered (>= 0.95: the lowered model is at least as fast). "
        "'output vs lowered' compares output spikes on the benchmark input.",
        "",
        "| model | framework | lowered ms/step | hand-written ms/step | hand-written/lowered | nirtorch ms/step "
        "| nirtorch/lowered | hand-written/lowered, paired by round (IQR) | hand-written output vs lowered "
        "| nirtorch output vs lowered |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for e in table:
        hw_ratio = e["handwritten_over_lowered"]
        nt_ratio = e["nirtorch_over_lowered"]
        lines.append(
            f"| {e['model']} | {e['framework']} | {_fmt_ms(e['lowered_ms'])} | {_fmt_ms(e['handwritten_ms'])} | "
            f"{'-' if hw_ratio is None else f'{hw_ratio:.2f}'} | {_fmt_ms(e['nirtorch_ms'])} | "
            f"{'-' if nt_ratio is None else f'{nt_ratio:.2f}'} | {_paired(e)} | "
            f"{_check_txt(e['handwritten_check'], e['handwritten_status'])} | "
            f"{_check_txt(e['nirtorch_check'], e['nirtorch_status'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", default="benchmarks/results/speed", help="output directory")
    p.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    p.add_argument("--models", default="conv,mlp")
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--steps", type=int, default=25, help="time steps T")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15, quick 3)")
    p.add_argument("--inner", type=int, default=None, help="steps per variant per round (default 3, quick 1)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--rate", type=float, default=0.3, help="input spike probability")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 15)
    args.inner = args.inner or (1 if args.quick else 3)
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    models = [m for m in args.models.split(",") if m]
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    meta = {
        "timestamp": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "steps": args.steps, "batch": args.batch, "rounds": args.rounds, "inner": args.inner,
        "warmup": args.warmup, "threads": torch.get_num_threads(), "quick": args.quick,
        "input_rate": args.rate, "dt": DT, "cpu_count": os.cpu_count(),
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "python": sys.version.split()[0], "platform": platform.platform(),
        "versions": {k: version(k) for k in ("torch", "snntorch", "norse", "spikingjelly", "nirtorch", "nir", "snnx")},
    }
    builders = {"conv": conv_graph, "mlp": mlp_graph}
    rows: list[dict] = []
    for name in models:
        graph, spec = builders[name]()
        rows.extend(run_model(name, graph, spec, args))
    meta["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    table = summarise(rows, models, args.frameworks)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    stem = "lowered_vs_handwritten" + ("_quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "summary": table, "rows": rows}, indent=2))
    md = markdown(table, meta)
    (out / f"{stem}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
