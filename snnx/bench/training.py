"""Supervised training of a torch ANN classifier: the one loop behind every ANN that snnx converts.

``snnx bench``'s conversion track, the conversion tests (``tests/convert/convert_oracle.py``) and the
conversion benchmarks (``benchmarks/lowlatency_models.py``, ``benchmarks/loihi_deploy.py``) train their
ANNs with it, so a model trained in a test is trained exactly as the benchmark's.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def train_classifier(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int = 64,
    seed: int = 0,
    cosine: bool = True,
) -> Any:
    """Train ``model`` (a ``torch.nn.Module``) with Adam and cross-entropy; returns it in eval mode.

    :param x: inputs ``(N, *shape)``, float32.
    :param y: integer class labels ``(N,)``.
    :param epochs: passes over the data, each in a fresh random order.
    :param lr: Adam's learning rate (the initial one with ``cosine``).
    :param seed: seeds the data order only (a private generator: the caller's torch RNG is untouched);
        the initial weights are the caller's.
    :param cosine: anneal the learning rate to zero over ``epochs`` (``CosineAnnealingLR``), else constant.
    """
    import torch

    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    # Same sequence as torch.manual_seed(seed) followed by the global randperm, without touching it.
    order_rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1)) if cosine else None
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=order_rng)
        for i in range(0, len(xt), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
        if sched is not None:
            sched.step()
    return model.eval()
