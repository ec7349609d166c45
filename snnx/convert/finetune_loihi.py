"""``snnx convert --finetune train.npz --target loihi``: fine-tuning through Loihi's reset-to-zero neuron.

The generic fine-tuner (:mod:`snnx.convert.finetune`) trains the converted graph for the subtract reset
and ``v_init = θ/2`` of target ``any``; Loihi's neuron resets to zero from zero state, so what it learns
there is partly undone by the target's rewrite. :func:`finetune_reset_to_zero` instead trains the graph
*as* ``--target loihi`` writes it (after the scale fit of :mod:`snnx.convert.resetzero`), through the
exact reset-to-zero dynamics of :func:`snnx.convert.finetune.rate_model` at ``T`` and ``2T``, on the
fit's own criterion: the relative mean-square error of the readout against the ANN's logits (centred,
at the best gain; :func:`readout_loss`). Cross-entropy with distillation at temperature 2 (the generic
fine-tuner's loss) moved the readout away from the ANN at ``2T`` and did not help at ``T``; training
at ``T`` alone cost ``2T`` more than it gained (measured: ``specs/conversion.md`` §8). With ``--integer`` the forward pass sees the
weights and biases rounded to the grid the integer stage will use (straight-through rounding, the grid
re-derived from :func:`snnx.convert.integer.integerise` at the start of every epoch), so training
cannot rely on differences the integer graph rounds away.

A fifth of the fine-tuning data is held out: after every epoch the graph that would be written (the
integer Loihi graph with ``--integer``) runs on the reference simulator on it, at ``T`` and ``2T``, and
the epoch whose readout error against the ANN there is lowest is kept, the scale fit alone (epoch 0)
included, so fine-tuning never returns a graph further from the ANN on the held-out data than the one
it started from. (The held-out accuracy is reported too, but a few hundred easy training images are
97-100 % right at every epoch: too flat to choose by.)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from typing import Any

import nir
import numpy as np

from snnx.convert.driver import ConversionResult
from snnx.convert.finetune import one_output, rate_model, training_data
from snnx.errors import ConversionError

#: The fraction of the fine-tuning data held out for choosing the epoch.
HOLDOUT = 0.2
#: Adam's learning rate: 3e-4 lowered the held-out error of the digits MLP more in 8 epochs but not the
#: small test MLP's at all (specs/conversion.md §8).
LEARNING_RATE = 1e-4


def readout_loss(readout, logits):
    """The fit's criterion (:func:`snnx.convert.resetzero.readout_error`) as a loss: relative mean-square
    error of the centred readout, at its least-squares gain, against the ANN's centred logits."""
    import torch

    y = readout - readout.mean(1, keepdim=True)
    t = logits - logits.mean(1, keepdim=True)
    gain = (y * t).sum() / torch.clamp((y * y).sum(), min=1e-12)
    return ((gain * y - t) ** 2).mean() / (t**2).mean()


def _weights_of(graph: nir.NIRGraph, names: set[str]) -> dict[str, dict[str, np.ndarray]]:
    return {
        n: {a: np.asarray(getattr(graph.nodes[n], a), dtype=np.float64).copy()
            for a in ("weight", "bias") if getattr(graph.nodes[n], a, None) is not None}
        for n in names
    }


def _trained(model, like: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """The rate model's current weights, as ``like`` names them."""
    return {
        n: {a: model.weights[f"{n}__{a}"].detach().double().numpy().copy() for a in attrs}
        for n, attrs in like.items()
    }


def _with_weights(result: ConversionResult, weights: dict[str, dict[str, np.ndarray]]) -> ConversionResult:
    graph = copy.deepcopy(result.graph)
    for name, attrs in weights.items():
        for attr, value in attrs.items():
            setattr(graph.nodes[name], attr, value.copy())
    return dataclasses.replace(result, graph=graph)


def deployed(result: ConversionResult, bits: int | None, options: dict[str, Any]) -> nir.NIRGraph:
    """The graph ``snnx convert`` writes from ``result``: ``--integer bits`` (if any), then ``--target loihi``."""
    from snnx.convert.integer import integerise
    from snnx.convert.targets import retarget

    result = dataclasses.replace(result, graph=copy.deepcopy(result.graph))
    if bits:
        integerise(result.graph, bits, **options)
    return retarget(result, "loihi").graph


def _held_out(
    graph: nir.NIRGraph, x: np.ndarray, y: np.ndarray, logits: np.ndarray, windows: tuple[int, ...]
) -> tuple[list[float], list[float]]:
    """Accuracy and readout error against the ANN's centred ``logits`` per window, on the reference."""
    from snnx.api import prepare
    from snnx.convert.resetzero import readout_error
    from snnx.ir.reference import simulate

    prepared = prepare(graph)
    (inp,) = prepared.input_names
    (out,) = prepared.output_names
    xs = np.broadcast_to(x.astype(np.float64)[None], (max(windows), *x.shape))
    trace = simulate(prepared, {inp: xs}, record=True)[out]
    outs = [trace[t - 1].reshape(len(y), -1) for t in windows]
    return [float(np.mean(o.argmax(1) == y)) for o in outs], [readout_error(o / t, logits) for o, t in zip(outs, windows)]


def _avgpool_factor(graph: nir.NIRGraph, name: str, preds: dict[str, list[str]]) -> float:
    """The ``k²`` that ``--integer`` folds into ``name``'s weights when an AvgPool2d feeds it (via Flatten)."""
    front = list(preds.get(name, []))
    while front:
        cur = front.pop()
        node = graph.nodes[cur]
        if isinstance(node, nir.AvgPool2d):
            return float(np.prod(np.broadcast_to(node.kernel_size, (2,))))
        if isinstance(node, nir.Flatten):
            front += preds.get(cur, [])
    return 1.0


def integer_grid(
    result: ConversionResult, trainable: set[str], bits: int, options: dict[str, Any]
) -> dict[str, tuple[float, float]]:
    """Per trainable node, ``(weight step, bias step)`` of the grid ``--integer bits`` rounds it to.

    ``integerise`` writes ``round(w · r/θ₀ · θ / k)`` (``θ₀``, ``r``: the population's float threshold
    and gain, ``θ``: its integer threshold, ``k``: an AvgPool2d's ``k²`` folded in), so one integer
    weight step is ``k·θ₀/(r·θ)`` in the float graph's units, and a bias step ``θ₀/(r·θ)``.
    """
    from snnx.convert.integer import integerise

    graph = result.graph
    integer = copy.deepcopy(graph)
    readout_gain = integerise(integer, bits, **options)["readout_gain"]
    preds: dict[str, list[str]] = {}
    succ: dict[str, str] = {}
    for src, dst in graph.edges:
        preds.setdefault(dst, []).append(src)
        succ.setdefault(src, dst)
    grid = {}
    for name in trainable:
        pop = graph.nodes[succ[name]]
        r = float(np.asarray(pop.r).reshape(-1)[0])
        th0 = float(np.asarray(pop.v_threshold).reshape(-1)[0]) if isinstance(pop, nir.IF) else 1.0
        if isinstance(pop, nir.IF):
            theta = float(np.asarray(integer.nodes[succ[name]].v_threshold).reshape(-1)[0])
        else:  # the readout (I): one common gain
            theta = readout_gain
        step = th0 / (r * theta)
        grid[name] = (step * _avgpool_factor(graph, name, preds), step)
    return grid


def finetune_reset_to_zero(
    result: ConversionResult,
    data: str | os.PathLike | tuple[np.ndarray, np.ndarray],
    steps: int,
    *,
    teacher,
    bits: int | None = None,
    integer_options: dict[str, Any] | None = None,
    epochs: int = 5,
    lr: float = LEARNING_RATE,
    batch_size: int = 64,
    seed: int = 0,
    quantise: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``result.graph``'s weights (in place) through Loihi's reset-to-zero neuron at ``steps``.

    :param result: the converted (and reset-to-zero fitted) result, before ``--integer`` and the rewrite.
    :param data: an ``.npz`` with ``x`` and integer labels ``y``, or ``(x, y)``; its last fifth (after a
        seeded shuffle) is held out for choosing the epoch, never trained on (the labels only report
        held-out accuracy: the loss is distillation).
    :param teacher: the ANN (ONNX path or proto) whose logits are distilled.
    :param bits: the ``--integer`` bits that follow (None: a float graph); with ``integer_options`` (the
        target's :func:`snnx.convert.integer.integerise` options) the held-out graph is the integer one.
    :param quantise: with ``bits``, train on weights rounded to the integer grid (straight through).
    :returns: ``{"seconds", "epoch", "epochs", "held_out", "held_out_size", "windows"}``: ``held_out`` per
        epoch (0: before training) is ``([accuracy at T, at 2T], [readout error at T, at 2T])``, ``epoch``
        the one kept.
    """
    import torch

    from snnx.convert.evaluate import ann_logits
    from snnx.convert.targets import retarget

    # The loss and the held-out choice compare one readout with the ANN's logits.
    one_output(
        result.graph, "--finetune with --target loihi distils one readout from the ANN's logits",
        "fine-tune without --target loihi, or export one output per model",
    )
    x, y, trainable = training_data(result, data)
    if len(x) < 10:
        msg = f"--finetune: {len(x)} labelled samples; a fifth is held out to choose the epoch, so give at least 10"
        raise ConversionError(msg)
    start = time.perf_counter()
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(x) - max(1, int(round(HOLDOUT * len(x))))
    train, held = order[:cut], order[cut:]
    options = integer_options or {}
    windows = (steps, 2 * steps)

    held_logits = ann_logits(teacher, x[held]).reshape(len(held), -1)
    held_logits = held_logits - held_logits.mean(1, keepdims=True)

    def score(weights) -> tuple[list[float], list[float]]:
        graph = deployed(_with_weights(result, weights), bits, options)
        return _held_out(graph, x[held], y[held], held_logits, windows)

    initial = _weights_of(result.graph, trainable)
    history = [score(initial)]
    best_error, best_epoch = float(np.mean(history[0][1])), 0

    torch.manual_seed(seed)
    # Trained on the graph as the target writes it: reset to zero, zero initial state.
    target_graph = retarget(result, "loihi").graph
    model = rate_model(target_graph, steps, trainable, exact=True)
    # The same weights at 2T: fitting T alone cost T = 16 more than it gained at T = 8 (specs/conversion.md §8).
    longer = rate_model(target_graph, 2 * steps, trainable, exact=True)
    longer.weights = model.weights
    models = [model, longer]
    base_get = model.get
    grid: dict[str, tuple[float, float]] = {}
    levels = 2 ** (bits - 1) - 1 if bits else 0

    def rounded(name: str, attr: str):
        value = base_get(name, attr)
        if name not in grid or f"{name}__{attr}" not in model.weights:
            return value
        step = grid[name][0 if attr == "weight" else 1]
        q = torch.round(value / step)
        if attr == "weight":
            q = torch.clamp(q, -levels, levels)
        return value + (q * step - value).detach()

    for m in models:
        m.get = rounded
    logits = torch.as_tensor(ann_logits(teacher, x[train]).astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr)
    xt = torch.as_tensor(x[train])
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        if bits and quantise:
            grid = integer_grid(_with_weights(result, _trained(model, initial)), trainable, bits, options)
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            sum(readout_loss(m(xt[idx]).flatten(1), logits[idx]) for m in models).backward()
            opt.step()
        weights = _trained(model, initial)
        history.append(score(weights))
        if float(np.mean(history[-1][1])) < best_error:
            best_error, best_epoch, kept = float(np.mean(history[-1][1])), epoch, weights
    if best_epoch:
        for name, attrs in kept.items():
            for attr, value in attrs.items():
                setattr(result.graph.nodes[name], attr, value)
    return {
        "seconds": time.perf_counter() - start,
        "epoch": best_epoch,
        "epochs": epochs,
        "held_out": history,
        "held_out_size": len(held),
        "windows": windows,
    }
