"""snnTorch -> snnx -> Norse, spikes compared at every hop (docs/interop.md walks through it).

1. Build a zero-reset snnTorch MLP, write it with snnTorch's own ``export_to_nir``.
2. ``snnx import --from snntorch -A reset=zero``: the file in the snnx contract; ``snnx.simulate`` on it
   reproduces snnTorch's forward.
3. ``snnx export --for norse``: Norse's own ``from_nir`` (default arguments) loads it and its forward
   reproduces the reference, hence snnTorch.

Usage: python examples/interop_round_trip.py [WORKDIR]   (T=50, batch 4, Bernoulli input)
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import nir
import numpy as np
import torch

import snnx
from snnx.cli import main as snnx_cli

T, BATCH = 50, 4


def snntorch_model() -> tuple[torch.nn.Module, nir.NIRGraph]:
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    def leaky(n: int, beta: float, **kw) -> snn.Leaky:
        # export_to_nir needs per-neuron beta and threshold tensors to write consistent shapes.
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), reset_mechanism="zero",
                         init_hidden=True, **kw)

    net = torch.nn.Sequential(torch.nn.Linear(20, 40), leaky(40, 0.9), torch.nn.Linear(40, 10),
                              leaky(10, 0.8, output=True))
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.uniform_(p, -0.25, 0.35)
    return net, export_to_nir(net, torch.zeros(20))


def run_snntorch(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    from snntorch import utils

    utils.reset(net)
    with torch.no_grad():
        return np.stack([net(torch.from_numpy(x[t]))[0].numpy() for t in range(T)])


def run_norse_import(path: Path, x: np.ndarray) -> np.ndarray:
    from norse.torch import from_nir

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = from_nir(nir.read(path))
    state, out = None, []
    with torch.no_grad():
        for t in range(T):
            y, state = net(torch.from_numpy(x[t]), state)
            out.append(y.numpy())
    return np.stack(out)


def compare(name: str, expected: np.ndarray, got: np.ndarray) -> float:
    agree = float(np.mean(expected == got))
    print(f"{name:44s} {agree:8.2%} of {expected.size} values agree ({int(expected.sum())} spikes)")
    return agree


def main(workdir: Path) -> int:
    net, graph = snntorch_model()
    x = (np.random.default_rng(0).random((T, BATCH, 20)) < 0.3).astype(np.float32)
    spikes = run_snntorch(net, x)

    peer = workdir / "snntorch_mlp.nir"
    snnx.save(graph, peer)  # the exporter's graph as written, no contract metadata
    contract, norse_file = workdir / "snnx_mlp.nir", workdir / "for_norse.nir"
    assert snnx_cli(["import", str(peer), "--from", "snntorch", "-A", "reset=zero", "-o", str(contract)]) == 0
    assert snnx_cli(["export", str(contract), "--for", "norse", "-o", str(norse_file)]) == 0

    reference = next(iter(snnx.simulate(snnx.load(contract), x.astype(np.float64)).values()))
    norse = run_norse_import(norse_file, x)
    print()
    ok = compare("snnTorch forward vs snnx reference", spikes, reference) == 1.0
    ok &= compare("snnx reference vs Norse from_nir forward", reference, norse) == 1.0
    ok &= compare("snnTorch forward vs Norse from_nir forward", spikes, norse) == 1.0
    return 0 if ok and spikes.sum() > 0 else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(main(Path(sys.argv[1])))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(main(Path(tmp)))
