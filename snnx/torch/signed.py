"""Signed spikes (``specs/semantics.md`` §4, contract version 2) for torch neurons, written once.

A signed neuron keeps, besides its membrane, its net spike count ``n`` and replaces the usual spike
and subtract reset by::

    s = +1   where v > v_threshold
    s = -1   where not (v > v_threshold) and v <= 0 and n > 0
    s =  0   elsewhere
    v = v - v_threshold * s;   n = n + s

No framework neuron emits ``-1``, so each torch backend lets its own neuron compute the membrane
update of the step (snnTorch's ``Leaky``/``Synaptic`` without reset, Norse's subthreshold step,
SpikingJelly's ``neuronal_charge``) and hands the result to :func:`signed_step` together with *its own*
spike function: the ``+1`` branch is ``spike(v - v_threshold)``, the ``-1`` branch ``1 - spike(v)``
(``v <= 0`` is exactly "not ``v > 0``"), so the surrogate gradient flows through both branches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["SignedState", "signed_step", "zeros_count"]


class SignedState(NamedTuple):
    """A signed neuron's state: the framework neuron's own state and the net spike count ``n``.

    ``n`` holds small integers in the module's dtype (exact in float32 up to 2**24 spikes).
    """

    inner: Any
    n: Tensor


def signed_step(
    v: Tensor,
    v_threshold: Tensor | float,
    n: Tensor,
    spike: Callable[[Tensor], Tensor],
    *,
    detach_reset: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Signed spike and reset of one step on the updated membrane ``v``; returns ``(s, v, n)``.

    :param v: the membrane after this step's voltage update, ``(batch, *shape)``.
    :param v_threshold: the threshold (a tensor broadcasting against ``v``, or a float).
    :param n: the net spike count before this step (0 at the start of a run).
    :param spike: the framework's strict spike function: forward ``(x > 0)`` as 0/1, backward its
        surrogate gradient.
    :param detach_reset: keep the reset ``v_threshold * s`` out of the gradient (snnTorch does;
        Norse and SpikingJelly by default do not). The forward values are the same either way.
    :returns: the spikes ``s`` in {-1, 0, 1} (with the surrogate gradient of both branches), the reset
        membrane and the new net count.
    """
    pos = spike(v - v_threshold)
    # gate: the -1 branch is open only where the neuron has spikes to take back and did not just fire
    # (with v_threshold <= 0 both "v > v_threshold" and "v <= 0" can hold); it carries no gradient.
    gate = ((n > 0) & (pos.detach() == 0)).to(v.dtype)
    neg = (1 - spike(v)) * gate
    s = pos - neg
    taken = s.detach() if detach_reset else s
    v = v - v_threshold * taken
    n = n + s.detach()
    return s, v, n


def zeros_count(x: Tensor) -> Tensor:
    """A fresh net count ``n`` (all 0) for a batch shaped like ``x``, without gradient."""
    return torch.zeros_like(x, requires_grad=False)
