"""End to end: train on scikit-learn digits with lava-dl (SLAYER), deploy to Loihi 2 fixed point with Lava.

NIR graph -> ``lava-dl`` (SLAYER CUBA blocks, surrogate-gradient training on CPU) -> ``raise_`` back to
NIR -> ``lava`` (snnx quantisation, netx HDF5, Lava's bit-accurate ``fixed_pt`` Loihi 2 model), with the
numpy reference simulation of the trained graph as the yardstick.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

import snnx
from snnx.plugins.loihi import compat as lava_compat
from snnx.api import prepare
from snnx.ir.reference import simulate
from snnx.plugins import get_backend

LAVA_REASON = lava_compat.lava_available()
pytestmark = [
    pytest.mark.lava,
    pytest.mark.slow,
    pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON} (snnx install lava)"),
]

STEPS, DT, HIDDEN = 16, 1e-3, 64


def encode(images: np.ndarray) -> np.ndarray:
    """Deterministic rate code: pixel p in [0, 1] spikes at step t when floor((t+1) p) > floor(t p)."""
    t = np.arange(STEPS)[:, None, None]
    return (np.floor((t + 1) * images[None]) > np.floor(t * images[None])).astype(np.float64)


def untrained_graph(seed: int = 1) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)

    def lif(n: int) -> nir.LIF:
        # dt/tau = 1/8: a decay Loihi represents exactly (512/4096); r = 8 makes dt/tau * r = 1.
        return nir.LIF(tau=np.full(n, 8e-3), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([64])}),
            "fc1": nir.Affine(weight=rng.normal(0, 64**-0.5, (HIDDEN, 64)), bias=np.zeros(HIDDEN)),
            "lif1": lif(HIDDEN),
            "fc2": nir.Affine(weight=rng.normal(0, HIDDEN**-0.5, (10, HIDDEN)), bias=np.zeros(10)),
            "lif2": lif(10),
            "output": nir.Output(output_type={"output": np.array([10])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
    )
    graph.metadata = {"snnx": {"version": 1, "dt": DT}}
    return graph


def train(net, x: np.ndarray, labels: np.ndarray, epochs: int = 8) -> None:
    """Cross-entropy on output spike counts, through SLAYER's surrogate gradient."""
    import torch

    torch.manual_seed(0)
    data = torch.as_tensor(x, dtype=torch.float32)  # time-major (T, B, C), as every snnx model takes
    target = torch.as_tensor(labels)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(epochs):
        order = torch.randperm(len(target), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            counts = net(data[:, batch]).sum(0)
            loss = torch.nn.functional.cross_entropy(0.5 * counts, target[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()


def test_digits_trained_in_lava_dl_run_on_loihi2_fixed_point(tmp_path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.data / 16.0, digits.target
    order = np.random.default_rng(0).permutation(len(labels))
    train_idx, test_idx = order[:1437], order[1437:]
    x_test, y_test = encode(images[test_idx]), labels[test_idx]

    net = snnx.lower(untrained_graph(), to="lava-dl", dtype="float32")
    train(net, encode(images[train_idx]), labels[train_idx])
    trained = get_backend("lava-dl").raise_(net)
    snnx.save(trained, tmp_path / "digits.nir")

    reference = simulate(prepare(snnx.load(tmp_path / "digits.nir")), {"input": x_test})["output"]
    acc_reference = float(np.mean(reference.sum(0).argmax(1) == y_test))
    assert acc_reference > 0.8, f"training did not work: reference accuracy {acc_reference:.3f}"

    lava = get_backend("lava")
    model = snnx.lower(tmp_path / "digits.nir", to="lava")
    lava.save(model, str(tmp_path / "digits.net"))
    netx = lava_compat.import_lava("lava.lib.dl.netx")
    loaded = netx.hdf5.Network(net_config=str(tmp_path / "digits.net"))
    assert (len(loaded), loaded.inp.shape, loaded.out.shape) == (2, (64,), (10,))

    loihi = lava.run(model, {"input": x_test})["output"]
    acc_loihi = float(np.mean(loihi.sum(0).argmax(1) == y_test))
    spike_agreement = float(np.mean(loihi == reference))
    prediction_agreement = float(np.mean(loihi.sum(0).argmax(1) == reference.sum(0).argmax(1)))
    print(
        f"\ndigits: reference {acc_reference:.4f}, Loihi 2 fixed_pt {acc_loihi:.4f}, "
        f"spike agreement {spike_agreement:.4f}, prediction agreement {prediction_agreement:.4f}\n{model.report()}"
    )
    assert abs(acc_loihi - acc_reference) <= 0.01
    assert spike_agreement > 0.95
