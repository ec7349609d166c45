"""snnx bench: data loaders on data made in torchvision's on-disk format, the SNN spec, rows for
backends that are missing or fail, and a quick end-to-end run on a tiny budget."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from snnx.bench import data as bench_data
from snnx.bench.direct import DirectJob, availability, train_and_evaluate
from snnx.bench.models import SnnSpec, build_snn
from snnx.bench.runner import BenchConfig, run_bench
from snnx.cli import main
from snnx.errors import SnnxError


def _idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (the MNIST format): magic (type 0x08 = ubyte, ndim), dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, folder: str, n_train: int = 6, n_test: int = 4) -> tuple[np.ndarray, np.ndarray]:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_train, 28, 28))
    labels = np.arange(n_train) % 10
    _idx(raw / "train-images-idx3-ubyte", images)
    _idx(raw / "train-labels-idx1-ubyte", labels)
    _idx(raw / "t10k-images-idx3-ubyte", images[:n_test])
    _idx(raw / "t10k-labels-idx1-ubyte", labels[:n_test])
    return images, labels


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_loaders_read_the_on_disk_format(tmp_path, name, folder):
    pytest.importorskip("torchvision")
    images, labels = _fake_mnist(tmp_path, folder)
    ds = bench_data.load(name, tmp_path)
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train[:, 0] * 255, images, atol=1e-3)
    assert ds.y_train.tolist() == labels.tolist()


def test_cifar10_reads_the_pickle_batches(tmp_path):
    folder = tmp_path / bench_data.CIFAR_DIR
    folder.mkdir()
    rng = np.random.default_rng(0)
    for part in (*bench_data.CIFAR_TRAIN, *bench_data.CIFAR_TEST):
        batch = {"data": rng.integers(0, 256, size=(3, 3072), dtype=np.uint8), "labels": [1, 2, 3]}
        with open(folder / part, "wb") as fh:
            pickle.dump(batch, fh)
    ds = bench_data.load("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_test.tolist() == [1, 2, 3]
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_missing_data_root_is_a_clear_error(tmp_path):
    with pytest.raises(SnnxError, match="--data-root"):
        bench_data.load("mnist", None)
    with pytest.raises(SnnxError, match="no mnist data"):
        bench_data.load("mnist", tmp_path)
    with pytest.raises(SnnxError, match="cifar-10-batches-py"):
        bench_data.load("cifar10", tmp_path)
    with pytest.raises(SnnxError, match="unknown data set"):
        bench_data.load("imagenet")


def test_cli_missing_root_exits_2(tmp_path, capsys):
    code = main(["bench", "--dataset", "mnist", "-o", str(tmp_path / "out")])
    assert code == 2
    assert "--data-root" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_shipped_datasets_split_and_scale():
    ds = bench_data.load("digits")
    assert ds.shape == (1, 8, 8) and len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.max() <= 1.0 and set(np.unique(ds.y_train)) == set(range(10))


@pytest.mark.parametrize("arch", ["strided", "pool"])
def test_snn_spec_builds_a_valid_graph_that_runs(arch):
    import snnx

    g = build_snn(SnnSpec(arch=arch), (1, 8, 8), 10)
    shapes = snnx.validate(g).shapes
    assert shapes["output"] == (10,)
    out = snnx.simulate(g, np.ones((3, 2, 1, 8, 8)))
    assert out["output"].shape == (3, 2, 10)
    with pytest.raises(SnnxError, match="architecture"):
        build_snn(SnnSpec(arch="resnet"), (1, 8, 8), 10)


def test_unknown_backend_is_a_row_with_its_reason():
    g = build_snn(SnnSpec(), (1, 8, 8), 10)
    row = availability("no-such-backend", g)
    assert row is not None and row.status == "unavailable" and "no backend 'no-such-backend'" in row.detail


def test_refusing_backend_is_a_row_with_its_reasons():
    import snnx

    # The pool architecture has SumPool and an LI readout; a backend without them must say so.
    g = build_snn(SnnSpec(arch="pool"), (1, 8, 8), 10)
    refusing = [n for n, b in snnx.get_backends().items() if b.refusals(snnx.api.prepare(g))]
    if not refusing:
        pytest.skip("every registered backend takes the pool architecture")
    row = availability(refusing[0], g)
    assert row is not None and row.status in ("refused", "unavailable") and row.detail


def test_a_backend_that_fails_in_training_is_an_error_row(tmp_path):
    import snnx

    g = build_snn(SnnSpec(), (1, 8, 8), 10)
    path = tmp_path / "g.nir"
    snnx.save(g, str(path))
    x = np.zeros((4, 1, 8, 8), np.float32)
    y = np.zeros(4, np.int64)
    # The reference backend returns the NIR graph itself: not trainable, so the row carries the error.
    job = DirectJob("reference", str(path), "t", x, y, x, y, steps=2, epochs=1, batch_size=2, lr=1e-3, seed=0, readout="spikes")
    row = train_and_evaluate(job)
    assert row.status == "error" and "AttributeError" in row.detail


@pytest.mark.slow
def test_quick_bench_end_to_end(tmp_path):
    pytest.importorskip("torch")
    import snnx

    torch_backends = [b for b in ("norse", "snntorch", "spikingjelly") if b in snnx.get_backends()]
    if not torch_backends:
        pytest.skip("no torch training backend")
    config = BenchConfig(
        datasets=("digits",),
        backends=(torch_backends[0], "no-such-backend"),
        epochs=1,
        steps=4,
        limit_train=128,
        limit_test=64,
        anns=("mlp",),
        ann_epochs=2,
        timesteps=(2, 8),
        percentiles=(100.0,),
        calib_samples=64,
        stats_samples=32,
        lava_samples=4,
        lava_steps=4,
    )
    events = []
    result = run_bench(config, tmp_path, lambda *a, **k: events.append(a[0]))
    by_backend = {r.backend: r for r in result.direct}
    ok = by_backend[torch_backends[0]]
    assert ok.status == "ok", ok.detail
    assert 0.0 <= ok.test_accuracy <= 1.0 and ok.train_seconds_per_epoch > 0 and ok.sops_per_sample > 0
    assert ok.macs_per_sample > 0  # the first layer sees analog pixels
    assert by_backend["no-such-backend"].status == "unavailable"
    conv, lava = result.conversion
    assert conv.status == "ok", conv.detail
    # The Lava row: --target loihi on Loihi 2 fixed point, saying what was run.
    assert lava.backend == "lava" and "first 4 test images, T=4" in lava.detail
    if lava.status == "ok":
        assert [p.steps for p in lava.points] == [4] and 0.0 <= lava.points[0].snn_accuracy <= 1.0
        assert lava.points[0].sops is None  # not measured on Lava
    else:
        assert lava.status == "unavailable" and "snnx install lava" in lava.detail
    assert [p.steps for p in conv.points] == [2, 8]
    assert conv.points[1].sops > conv.points[0].sops  # more steps, more spikes
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["direct"][1]["detail"].startswith("no backend")
    for png in ("accuracy_vs_T.png", "train_time_per_backend.png", "accuracy_vs_sops.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert "no-such-backend" in (tmp_path / "bench.md").read_text()
    assert "mlp on lava" in (tmp_path / "bench.md").read_text()
    assert any(e.startswith("direct") for e in events) and any(e.startswith("conversion") for e in events)


def test_conversion_rows_report_per_t_spikes_and_operations_against_the_anns_macs(tmp_path):
    # An untrained (seeded) MLP is enough: the ratios and counts do not need a good classifier.
    pytest.importorskip("torch")
    from snnx.bench.conversion import export_onnx, sweep
    from snnx.bench.data import load_digits
    from snnx.bench.models import build_ann
    from snnx.bench.report import conversion_rows
    from snnx.bench.result import BenchResult

    ds = load_digits().limit(64, 16)
    path = export_onnx(build_ann("mlp", ds.shape, ds.classes, 0), ds.shape, tmp_path / "mlp.onnx")
    (row,) = sweep(path, ds, "mlp", (99.9,), (2, 4), calib_samples=32)
    assert row.status == "ok", row.detail
    # 64 pixels -> 128 -> 64 -> 10: the ANN's MACs by hand (the ONNX count convert stores)
    assert row.ann_macs == 64 * 128 + 128 * 64 + 64 * 10
    for p in row.points:
        assert p.negative_per_neuron == 0 and p.positive_per_neuron > 0  # unsigned conversion
        assert p.sop_mac_ratio == pytest.approx((p.sops + p.macs) / row.ann_macs)
        assert p.low_bit_ratio == pytest.approx(4 * row.ann_macs / (p.sops + 4 * p.macs))
    two, four = row.points
    # the analog first layer does its 64 x 128 MACs every step (pixels are non-zero: fewer)
    assert four.macs == pytest.approx(2 * two.macs) and four.macs <= 4 * 64 * 128
    header, *body = conversion_rows(BenchResult(config={}, environment={}, conversion=[row]))
    assert len(body) == 2 and all(len(r) == len(header) for r in body)
    assert body[0][header.index("spk/neuron +/−")] == f"{two.positive_per_neuron:.2f} / 0.00"


def test_train_classifier_learns_digits_and_leaves_the_callers_rng_alone():
    # The one ANN training loop (conversion tests, benchmarks, snnx bench): a linear model must learn
    # the digits well above chance (0.1), and seeding the data order must not reseed torch's global RNG.
    torch = pytest.importorskip("torch")
    from snnx.bench.data import load_digits
    from snnx.bench.training import train_classifier

    ds = load_digits().limit(400, 10)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    before = torch.get_rng_state()
    trained = train_classifier(model, ds.x_train, ds.y_train, epochs=5, lr=1e-2, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert trained is model and not model.training
    with torch.no_grad():
        accuracy = float((model(torch.as_tensor(ds.x_train)).argmax(1).numpy() == ds.y_train).mean())
    assert accuracy > 0.6, accuracy  # 0.84-0.90 over initial seeds 0-2; chance is 0.1
