"""Per time window: the :class:`~snnx.metrics.Stats` (and accuracy) of the first ``T`` steps of one run.

Every graph is causal, so the first ``T`` steps of a run of ``T_max`` steps are a run of ``T`` steps:
one simulation for the longest window serves every shorter one (``snnx convert --evaluate`` and the
bench's conversion track do the same). A static input ``(batch, *shape)`` is presented at every step,
as ``--evaluate`` presents its samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from snnx.errors import ValidationError
from snnx.ir.nodes import kind_of
from snnx.ir.prepare import PreparedGraph
from snnx.metrics.stats import Stats
from snnx.metrics.trace import complete_traces

Array = np.ndarray


def parse_windows(text: str, option: str = "--timesteps") -> tuple[int, ...]:
    """``"4,8,16"`` → ``(4, 8, 16)``, sorted and without repeats.

    :raises ValidationError: an empty list, a non-integer or a window below 1.
    """
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        msg = f"{option} takes positive integers separated by commas, like 4,8,16; got {text!r}"
        raise ValidationError(msg)
    return tuple(sorted(set(values)))


def window_inputs(prepared: PreparedGraph, inputs: Mapping[str, Array], steps: int) -> dict[str, Array]:
    """``inputs`` covering ``steps`` steps: a static ``(batch, *shape)`` array is repeated at every step,
    a time-major ``(T, batch, *shape)`` one is cut to its first ``steps`` steps.

    :raises ValidationError: naming the input that has fewer than ``steps`` steps or the wrong rank.
    """
    out = {}
    for name, value in inputs.items():
        x = np.asarray(value)
        shape = tuple(prepared.shapes[name])
        if x.ndim == len(shape) + 1:
            out[name] = np.broadcast_to(x[None], (steps, *x.shape))
        elif x.ndim == len(shape) + 2:
            if x.shape[0] < steps:
                msg = (
                    f"input {name!r} has {x.shape[0]} steps but the longest window is {steps}: give an input "
                    f"of at least {steps} steps (or a static (batch, *shape) one), or shorten --timesteps"
                )
                raise ValidationError(msg, node=name)
            out[name] = x[:steps]
        else:
            msg = (
                f"input {name!r} has shape {x.shape}; expected (T, batch, {', '.join(map(str, shape))}) or a "
                f"static (batch, {', '.join(map(str, shape))})"
            )
            raise ValidationError(msg, node=name)
    return out


def cut(traces: Mapping[str, Array], steps: int) -> dict[str, Array]:
    """The first ``steps`` steps of every trace."""
    return {k: np.asarray(v)[:steps] for k, v in traces.items()}


def predictions(prepared: PreparedGraph, traces: Mapping[str, Array], output: str, steps: int) -> Array:
    """Class per sample from ``output`` after ``steps`` steps: its evidence over the window.

    An integrating readout (a stateful, non-spiking node such as the ``I`` of a converted graph)
    holds the evidence in its value at the last step; spikes, or a stateless readout, are summed
    over the window. The class is the argmax over the flattened per-sample output. Missing stateless
    nodes (a backend's traces) are recomputed (:func:`~snnx.metrics.trace.complete_traces`).
    """
    srcs = [s for s, _delayed in prepared.schedule.preds[output]] or [output]
    kinds = [kind_of(prepared.nodes[s], s) for s in srcs]
    integrating = all(k.stateful and not k.spike_output for k in kinds)
    if output not in traces:  # a backend records the stateful nodes; the readout may be stateless
        traces = complete_traces(prepared, traces)
    y = np.asarray(traces[output])[:steps]
    evidence = y[-1] if integrating else y.sum(axis=0)
    return evidence.reshape(evidence.shape[0], -1).argmax(axis=1)


@dataclass
class Window:
    """The :class:`Stats` of the first :attr:`steps` steps, and the accuracy when labels were given."""

    steps: int
    stats: Stats
    accuracy: float | None = None

    def row(self) -> dict[str, Any]:
        """The per-T numbers (per sample) as a flat dict: what the table's columns show, unrounded."""
        s = self.stats
        cmos, loihi = s.energy["cmos45"], s.energy["loihi"]
        return {
            "T": self.steps,
            "accuracy": self.accuracy,
            "positive_per_neuron": s.positive_per_neuron,
            "negative_per_neuron": s.negative_per_neuron,
            "spikes": s.spikes,
            "sops": s.sops,
            "macs": s.macs,
            "ann_macs": s.ann_macs,
            "sop_mac_ratio": s.sop_mac_ratio,
            "low_bit_ratio": s.low_bit_ratio,
            "snn_pj": cmos.snn_pj,
            "energy_ratio": cmos.ratio,
            "loihi_pj": loihi.snn_pj,
        }


def accuracy(
    prepared: PreparedGraph, traces: Mapping[str, Array], labels: Array, steps: int, output: str | None = None
) -> float:
    """Fraction of samples whose :func:`predictions` after ``steps`` steps equal ``labels``.

    :raises ValidationError: the graph has several outputs and none is named, or the labels do not
        match the batch.
    """
    names = prepared.output_names
    if output is None:
        if len(names) != 1:
            msg = f"the graph has outputs {names}; accuracy needs one (name it)"
            raise ValidationError(msg)
        output = names[0]
    pred = predictions(prepared, traces, output, steps)
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(pred):
        msg = f"{len(y)} labels for a batch of {len(pred)} samples; give one label per sample of the input"
        raise ValidationError(msg, node=output)
    return float(np.mean(pred == y))


__all__ = ["Window", "accuracy", "cut", "parse_windows", "predictions", "window_inputs"]
