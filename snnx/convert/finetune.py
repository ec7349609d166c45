"""``snnx convert --finetune train.npz``: quantisation-aware fine-tuning of the converted graph for ``T`` steps.

With signed spikes (and, up to the unevenness of spike arrival, without them) an IF population of the
converted graph fires ``N = clip(ceil((T·r·x̄ + v_init)/θ) − 1, 0, T)`` times in ``T`` steps, where
``x̄`` is its mean input per step, a linear function of the upstream populations' rates ``N/T``.
:func:`rate_model` builds, node by node from the NIR graph itself (Conv2d, Affine, pools, Flatten,
Scale, IF, I), a torch module that either runs the ``T`` steps of the contract exactly (``exact``)
or evaluates that closed form. :func:`finetune` trains the Conv/Gemm/MatMul weights and biases on the
exact ``T``-step forward plus the closed form at ``T = 64`` (so the graph stays good at every window),
with cross-entropy and distillation from the ANN's logits; each IF passes gradients straight through
where it is active and not saturated (the STE of QCFS, Bu et al. 2022). The weights are written back
into the NIR nodes; structural nodes (max trees, Concat embeddings) and thresholds stay fixed.
"""

from __future__ import annotations

import os
import time

import nir
import numpy as np

from snnx.convert.calibrate import labelled_samples
from snnx.errors import ConversionError
from snnx.ir.semantics import v_init_of

#: ONNX ops whose NIR nodes hold the ANN's trainable weights.
TRAINABLE_OPS = frozenset({"Conv", "Gemm", "MatMul"})
#: The long window whose closed-form rate model is trained alongside the short one.
ANCHOR_STEPS = 64


def _order(graph: nir.NIRGraph) -> tuple[list[str], dict[str, list[str]]]:
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        preds[dst].append(src)
    order, seen = [], set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for p in preds[n]:
            visit(p)
        order.append(n)

    for n in sorted(graph.nodes):
        visit(n)
    return order, preds


def rate_model(graph: nir.NIRGraph, steps: int, trainable: set[str], *, exact: bool = False):
    """A torch module computing the converted graph's readout per step after ``steps`` steps.

    :param exact: run the ``steps`` time steps of the contract (signed or not, as the nodes say) in the
        forward pass, with gradients passed straight through each IF as if its spikes were its input
        current over the threshold (where it is active); otherwise the closed-form rate model.
    """
    from snnx.ir.semantics import reset_of, signed_of
    import torch
    import torch.nn.functional as F
    from torch import nn

    order, preds = _order(graph)

    class RateModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = nn.ParameterDict()
            self.fixed: dict[str, dict[str, torch.Tensor]] = {}
            for name, node in graph.nodes.items():
                tensors = {}
                for attr in ("weight", "bias", "scale", "r", "v_threshold"):
                    if hasattr(node, attr) and getattr(node, attr) is not None:
                        tensors[attr] = torch.as_tensor(np.asarray(getattr(node, attr), dtype=np.float32))
                if isinstance(node, (nir.IF, nir.I)):
                    tensors["v_init"] = torch.as_tensor(np.asarray(v_init_of(node), dtype=np.float32))
                if name in trainable:
                    for attr in ("weight", "bias"):
                        if attr in tensors:
                            self.weights[f"{name}__{attr}"] = nn.Parameter(tensors.pop(attr))
                self.fixed[name] = tensors

        def get(self, name: str, attr: str):
            key = f"{name}__{attr}"
            return self.weights[key] if key in self.weights else self.fixed[name][attr]

        def forward(self, x):
            if exact:
                return self.forward_steps(x)
            return self.forward_once(x, None)

        def forward_steps(self, x):
            state: dict[str, dict] = {}
            total = None
            for _ in range(steps):
                out = self.forward_once(x, state)
                total = out if total is None else total + out
            return total / steps

        def step_if(self, name, node, inp, st):
            theta = self.get(name, "v_threshold")
            drive = self.get(name, "r") * inp / theta
            if "v" not in st:
                st["v"] = torch.zeros_like(drive) + self.get(name, "v_init") / theta
                st["n"] = torch.zeros_like(drive)
            v = st["v"] + drive.detach()
            if signed_of(node):
                pos = v > 1
                neg = ~pos & (v <= 0) & (st["n"] > 0)
                s = pos.float() - neg.float()
            else:
                s = (v > 1).float()
            if reset_of(node) == "subtract":
                st["v"] = v - s
                # Fired and still above threshold: an input above one spike per step is clipped, like
                # QCFS's clip, so no gradient.
                saturated = (s > 0) & (st["v"] > 1)
            else:
                # Reset to zero (Loihi's neuron) drops the charge above the threshold: the neuron is
                # saturated when one step's drive alone crosses it.
                st["v"] = v * (s == 0).float()
                saturated = (s > 0) & (drive.detach() > 1)
            st["n"] = st["n"] + s
            active = (((st["n"] > 0) | (s != 0)) & ~saturated).float()
            if reset_of(node) != "subtract":
                # Reset to zero fires about u/(1 + u/2) per step at a drive of u thresholds (period
                # ⌊1/u⌋ + 1): its slope, not 1, as the straight-through gradient (lower held-out error
                # for the digits MLP on both seeds, specs/conversion.md §8).
                active = active / (1 + drive.detach().clamp(min=0) / 2) ** 2
            return s + active * (drive - drive.detach())

        def forward_once(self, x, state):
            vals = {}
            out = None
            for name in order:
                node = graph.nodes[name]
                if isinstance(node, nir.Input):
                    vals[name] = x
                    continue
                inp = sum(vals[p] for p in preds[name])
                if isinstance(node, nir.Conv2d):
                    y = F.conv2d(
                        inp, self.get(name, "weight"), self.get(name, "bias"),
                        stride=_ints(node.stride),
                        padding=_pad(node.padding),
                        dilation=_ints(node.dilation),
                        groups=int(node.groups),
                    )
                elif isinstance(node, nir.Affine):
                    y = inp @ self.get(name, "weight").T + self.get(name, "bias")
                elif isinstance(node, nir.Linear):
                    y = inp @ self.get(name, "weight").T
                elif isinstance(node, nir.Flatten):
                    y = inp.flatten(1)
                elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
                    k = tuple(int(v) for v in np.broadcast_to(node.kernel_size, (2,)))
                    y = F.avg_pool2d(
                        inp, k, tuple(int(v) for v in np.broadcast_to(node.stride, (2,))),
                        tuple(int(v) for v in np.broadcast_to(node.padding, (2,))), count_include_pad=True,
                    )
                    if isinstance(node, nir.SumPool2d):
                        y = y * (k[0] * k[1])
                elif isinstance(node, nir.Scale):
                    y = inp * self.get(name, "scale")
                elif isinstance(node, nir.IF) and state is not None:
                    y = self.step_if(name, node, inp, state.setdefault(name, {}))
                elif isinstance(node, nir.IF):
                    theta = self.get(name, "v_threshold")
                    u = steps * self.get(name, "r") * inp / theta
                    hard = torch.clamp(torch.ceil(u + self.get(name, "v_init") / theta) - 1, 0, steps)
                    soft = torch.clamp(u, 0, steps)
                    y = (soft + (hard - soft).detach()) / steps
                elif isinstance(node, nir.I):
                    y = self.get(name, "r") * inp
                elif isinstance(node, nir.Output):
                    y = inp
                    out = y if out is None else out
                else:
                    msg = f"--finetune: node {name!r} of type {type(node).__name__} has no rate model"
                    raise ConversionError(msg)
                vals[name] = y
            return out

        def write_back(self) -> None:
            for key, p in self.weights.items():
                name, attr = key.split("__")
                setattr(graph.nodes[name], attr, p.detach().double().numpy().copy())

    return RateModel()


def _ints(value):
    """An int, or a tuple of ints, for torch's conv arguments."""
    values = [int(v) for v in np.atleast_1d(value)]
    return values[0] if len(values) == 1 else tuple(values)


def _pad(padding):
    return padding if isinstance(padding, str) else _ints(padding)


def _loss(logits, labels, soft, idx):
    """Cross-entropy, half and half with the KL divergence to the ANN's logits at temperature 2."""
    import torch

    loss = torch.nn.functional.cross_entropy(logits, labels)
    if soft is None:
        return loss
    kl = torch.nn.functional.kl_div(
        torch.log_softmax(logits / 2, 1), torch.softmax(soft[idx] / 2, 1), reduction="batchmean"
    )
    return 0.5 * loss + 0.5 * 4 * kl


def one_output(graph: nir.NIRGraph, needs: str, fix: str) -> None:
    """Refuse a graph with several Outputs where a stage compares one readout with the ANN's logits.

    :param needs: what the stage does with the readout (the message's start).
    :param fix: what the user can do instead.
    :raises ConversionError: naming the outputs, ``needs`` and ``fix``.
    """
    outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if len(outputs) != 1:
        msg = f"{needs}; this model has {len(outputs)} outputs ({', '.join(outputs)}): {fix}"
        raise ConversionError(msg)


def training_data(result, data) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """``--finetune``'s samples, int64 labels and the graph's trainable (Conv/Gemm/MatMul) nodes.

    :raises ConversionError: unreadable or mis-shaped data, or nothing to train.
    """
    x, y = labelled_samples(data, result.input_shape, result.onnx_input, "--finetune", "fine-tuning data")
    trainable = {n for n, op in result.origin.items() if op in TRAINABLE_OPS and n in result.graph.nodes}
    if not trainable:
        msg = "--finetune: the converted graph has no Conv/Gemm/MatMul weights to train"
        raise ConversionError(msg)
    return x, y.astype(np.int64), trainable


def finetune(
    result,
    data: str | os.PathLike | tuple[np.ndarray, np.ndarray],
    steps: int,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    teacher=None,
    exact: bool = True,
) -> dict[str, float]:
    """Fine-tune ``result.graph`` in place for a ``steps``-step window on labelled data.

    :param result: a :class:`snnx.convert.ConversionResult`.
    :param data: an ``.npz`` with ``x`` and integer labels ``y``, or ``(x, y)``.
    :param teacher: the ANN (ONNX path or proto): its logits are distilled into the SNN alongside the
        labels (half cross-entropy, half KL divergence at temperature 2), which keeps the SNN close
        to the ANN where the labels alone would let it overfit.
    :param exact: train through the exact ``steps``-step dynamics (see :func:`rate_model`).
    :returns: ``{"seconds": ..., "loss_first": ..., "loss_last": ..., "train_accuracy": ...}``.
    """
    import torch

    x, y, trainable = training_data(result, data)
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = rate_model(result.graph, steps, trainable, exact=exact)
    # The same weights at a long window (closed form): keeps the graph good at every T, not only T.
    anchor = rate_model(result.graph, ANCHOR_STEPS, trainable)
    anchor.weights = model.weights
    soft = None
    if teacher is not None:
        from snnx.convert.evaluate import ann_logits

        soft = torch.as_tensor(ann_logits(teacher, x).astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss = _loss(model(xt[idx]).flatten(1), yt[idx], soft, idx)
            loss = loss + _loss(anchor(xt[idx]).flatten(1), yt[idx], soft, idx)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        losses.append(total / len(xt))
    with torch.no_grad():
        correct = sum(
            int((model(xt[i : i + 256]).flatten(1).argmax(1) == yt[i : i + 256]).sum())
            for i in range(0, len(xt), 256)
        )
    acc = correct / len(xt)
    model.write_back()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "loss_first": losses[0] if losses else float("nan"),
        "loss_last": losses[-1] if losses else float("nan"),
        "train_accuracy": acc,
        "epochs": float(epochs),
    }
