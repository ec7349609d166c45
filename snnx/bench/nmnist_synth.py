"""N-MNIST-like event streams made from MNIST images: a digit moved along three saccades in front of a DVS model.

N-MNIST (Orchard et al. 2015) was recorded by an ATIS camera on a pan-tilt unit making three ~100 ms
saccades along a triangle in front of a monitor showing MNIST digits; its 34x34 frame is the 28x28 digit
plus the motion. This module imitates that recording so that networks trained on N-MNIST can be run on
input of the kind they were made for when N-MNIST itself is not at hand (nothing here downloads it):

* the digit (intensities in ``[0, 1]``, bright strokes on a dim background, as on the monitor) is placed in
  a 34x34 frame and moved at constant speed along the triangle A → B → C → A, one saccade per edge,
  with bilinear interpolation for sub-pixel positions;
* every pixel is an ideal DVS pixel: it remembers the log intensity at its last event and emits one ON
  (OFF) event per ``contrast`` of increase (decrease) since then, the frame being sampled every
  ``sample_us``; the events a sample finds are stamped at the start of the interval since the previous
  sample, several spread evenly over it (the timestamps' resolution is ``sample_us``).

It is a model, not the sensor: no noise, refractory period or per-pixel threshold mismatch unless asked
(``noise_hz`` adds uniform background events), and the saccade geometry is an approximation of the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snnx.bench.events import bin_events, make_events, stack_samples
from snnx.errors import SnnxError

FRAME = 34
DIGIT = 28


@dataclass(frozen=True)
class SaccadeDVS:
    """Parameters of the synthetic N-MNIST recording (defaults: see :func:`synthetic_nmnist`)."""

    #: Log-intensity change that makes one event (a DVS's contrast threshold).
    contrast: float = 0.3
    #: Side of the saccade triangle in pixels (the digit moves within the 6 pixels the 34x34 frame leaves).
    amplitude: float = 4.0
    #: Duration of one saccade in microseconds (three per sample).
    saccade_us: float = 100_000.0
    #: How often the moving frame is sampled, microseconds.
    sample_us: float = 250.0
    #: Intensity of the monitor's background relative to a full-white stroke (keeps log finite).
    background: float = 0.05
    #: Rate of uniform background-noise events per pixel and polarity, Hz (0: none).
    noise_hz: float = 0.0

    def __post_init__(self) -> None:
        if self.contrast <= 0 or self.saccade_us <= 0 or self.sample_us <= 0:
            msg = "contrast, saccade_us and sample_us must be positive"
            raise SnnxError(msg)
        if not 0 <= self.amplitude <= FRAME - DIGIT - 1:
            msg = f"amplitude must be within 0..{FRAME - DIGIT - 1} pixels so the digit stays in the {FRAME}x{FRAME} frame"
            raise SnnxError(msg)
        if not 0 < self.background < 1:
            msg = "background must lie in (0, 1)"
            raise SnnxError(msg)
        if not self.noise_hz >= 0:  # also refuses NaN
            msg = f"noise_hz must be >= 0 (events per pixel and polarity per second; 0: no noise), got {self.noise_hz}"
            raise SnnxError(msg)

    @property
    def duration_us(self) -> float:
        """Length of one sample (three saccades)."""
        return 3 * self.saccade_us


def _path(params: SaccadeDVS, t_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The digit's top-left corner (x, y) at times ``t_us``: A → B → C → A, centred in the frame."""
    a = params.amplitude
    low = (FRAME - DIGIT) / 2 - a / 2
    corners = np.array([[0.0, 0.0], [a / 2, a], [a, 0.0], [0.0, 0.0]]) + low  # A (top-left), B (bottom), C (top-right)
    phase = np.clip(t_us / params.saccade_us, 0, 3)
    leg = np.minimum(phase.astype(np.int64), 2)
    frac = (phase - leg)[:, None]
    pos = corners[leg] * (1 - frac) + corners[leg + 1] * frac
    return pos[:, 0], pos[:, 1]


def _render(digit: np.ndarray, x: float, y: float) -> np.ndarray:
    """The digit's intensities drawn into the 34x34 frame with its top-left corner at (x, y), bilinearly."""
    frame = np.zeros((FRAME + 1, FRAME + 1))
    ix, iy = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - ix, y - iy
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            frame[iy + dy : iy + dy + DIGIT, ix + dx : ix + dx + DIGIT] += wy * wx * digit
    return frame[:FRAME, :FRAME]


def saccade_events(image: np.ndarray, params: SaccadeDVS | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """The event stream (:data:`snnx.bench.events.EVENT_DTYPE`) of one 28x28 image in ``[0, 1]``."""
    params = params or SaccadeDVS()
    digit = np.asarray(image, dtype=np.float64)
    if digit.shape != (DIGIT, DIGIT):
        msg = f"the image must be {DIGIT}x{DIGIT} (an MNIST digit; N-MNIST's 34x34 frame adds the motion), got shape {digit.shape}"
        raise SnnxError(msg)
    if not (digit.min() >= 0 and digit.max() <= 1):
        msg = "the image must hold intensities in [0, 1] (scale 0..255 images by 1/255)"
        raise SnnxError(msg)
    times = np.arange(0.0, params.duration_us + params.sample_us / 2, params.sample_us)
    xs, ys = _path(params, times)

    def log_intensity(k: int) -> np.ndarray:
        return np.log(params.background + (1 - params.background) * _render(digit, xs[k], ys[k]))

    reference = log_intensity(0)
    chunks: list[tuple[np.ndarray, ...]] = []
    for k in range(1, len(times)):
        level = log_intensity(k)
        diff = level - reference
        # the slack keeps a return to an earlier level (diff = -k·contrast, summed in floating point) at k events
        count = np.floor(np.abs(diff) / params.contrast + 1e-9).astype(np.int64)
        row, col = np.nonzero(count)
        if len(row):
            n = count[row, col]
            sign = diff[row, col] > 0
            reference[row, col] += np.where(sign, 1, -1) * n * params.contrast
            # events of the interval (t[k-1], t[k]] are stamped in [t[k-1], t[k]), the i-th of n at i/n of it,
            # so that a sample of 3 saccades fills exactly [0, duration) and bins into duration/bin_us steps
            rep = np.repeat(np.arange(len(row)), n)
            order = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
            t = times[k - 1] + order / np.repeat(n, n) * params.sample_us
            chunks.append((col[rep], row[rep], sign[rep].astype(np.uint8), np.floor(t).astype(np.int64)))
    if params.noise_hz > 0:
        rng = rng or np.random.default_rng(0)
        count = rng.poisson(params.noise_hz * params.duration_us * 1e-6 * 2 * FRAME * FRAME)
        chunks.append(
            (
                rng.integers(0, FRAME, count),
                rng.integers(0, FRAME, count),
                rng.integers(0, 2, count).astype(np.uint8),
                rng.integers(0, int(params.duration_us), count),
            )
        )
    if not chunks:
        return make_events([], [], [], [])
    return make_events(*(np.concatenate(c) for c in zip(*chunks)))


def synthetic_nmnist(
    images: np.ndarray,
    *,
    steps: int = 300,
    bin_us: float = 1000.0,
    params: SaccadeDVS | None = None,
    seed: int = 0,
) -> np.ndarray:
    """N-MNIST-like input for a batch of 28x28 images in ``[0, 1]``: float32 ``(steps, batch, 2, 34, 34)``.

    Each image's :func:`saccade_events`, binned from time 0 into ``steps`` bins of ``bin_us``
    microseconds (:func:`snnx.bench.events.bin_events`; channel 0 = OFF, 1 = ON, then row, column,
    like tonic's ``ToFrame`` on N-MNIST). The defaults (1 ms bins, 300 steps: the whole 300 ms) are the
    binning the NIR paper evaluated its N-MNIST CNN with.
    """
    params = params or SaccadeDVS()
    rng = np.random.default_rng(seed)
    frames = [bin_events(saccade_events(img, params, rng), bin_us=bin_us, steps=steps, size=(FRAME, FRAME)) for img in images]
    return stack_samples(frames)
