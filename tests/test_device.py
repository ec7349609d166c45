"""``--device`` / ``device=``: parsing, one-line refusals, and lowered models that move like any module.

The CPU path runs everywhere; the CUDA tests run where a GPU is present and are skipped otherwise. On a
machine without a GPU, the "meta" device stands in for one: a model whose tensors all moved with
``.to("meta")`` runs its forward there, and any tensor left on (or created on) the CPU raises.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import snnx
from snnx.device import DeviceError, parse_device, resolve_device

torch = pytest.importorskip("torch")

CASES = sorted((Path(snnx.__file__).parent / "conformance" / "cases").glob("*.nir"))
TORCH_BACKENDS = ("snntorch", "norse", "spikingjelly")
HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here (torch.cuda.is_available() is False)")
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA device")


def snnx_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "snnx.cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def one_line_error(result, *needles):
    code, _out, err = result
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("text", "canonical"), [(None, "cpu"), ("CPU", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"), ("mps", "mps")])
def test_parse_device(text, canonical):
    assert parse_device(text) == canonical


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "mps:0", "cpu:1", ""])
def test_parse_device_refuses_malformed(text):
    with pytest.raises(DeviceError, match="expected cpu, cuda, cuda:N or mps"):
        parse_device(text)


@pytest.mark.parametrize("backend", ["reference", "lava-dl", "lava", "lava-float"])
def test_cpu_only_backends_refuse_other_devices(backend):
    # Decided: a CPU-only backend given a GPU is an error, never a silent run on the CPU. It is checked
    # before the hardware, so the answer is the same on every machine.
    with pytest.raises(DeviceError, match=f"backend '{backend}' runs on cpu only"):
        resolve_device("cuda", backend)
    assert resolve_device("cpu", backend) == "cpu"


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_torch_backends_accept_every_device_kind(backend):
    impl = snnx.get_backend(backend)
    assert set(impl.devices) == {"cpu", "cuda", "mps"}


@no_cuda
def test_absent_cuda_is_one_clear_error(small_graph):
    with pytest.raises(DeviceError, match=r"no CUDA device is available here \(torch.cuda.is_available\(\) is False\)"):
        snnx.lower(small_graph, to="snntorch", device="cuda")
    with pytest.raises(DeviceError, match="no CUDA device"):
        snnx.run(small_graph, np.zeros((3, 1, 3)), backend="norse", device="cuda:0")


def test_cpu_device_runs_and_matches_reference(small_graph):
    x = (np.random.default_rng(0).random((30, 4, 3)) < 0.5).astype(float)
    ref = snnx.simulate(small_graph, x)["output"]
    for backend in TORCH_BACKENDS:
        got = snnx.run(small_graph, x, backend=backend, device="cpu")["output"]
        assert np.array_equal(got, ref), backend


def test_check_reports_cpu_only_backends_as_refused_on_a_gpu(small_graph, monkeypatch):
    # Pretend the GPU exists (this machine may have none): the CPU-only reference backend must then be
    # a "refused" row naming the device, not an attempt to run it there.
    monkeypatch.setattr("snnx.device.check_available", lambda device: None)
    (row,) = snnx.check(small_graph, ["reference"], steps=5, batch=1, device="cuda")
    assert row.status == "refused" and "CPU only" in row.detail and "--device cuda" in row.detail


@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_lowered_models_move_whole_to_another_device(backend):
    """Every conformance case, lowered, moved with .to("meta") and run there: nothing stays on the CPU."""
    ran = 0
    for path in CASES:
        graph = snnx.load(path)
        try:
            model = snnx.lower(graph, to=backend)
        except snnx.SnnxError:  # the backend refuses this case (its capability check says why)
            continue
        model = model.to("meta")
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            assert tensor.device.type == "meta", f"{path.name}: {name} stayed on {tensor.device}"
        xs = {
            k: torch.as_tensor(v, dtype=torch.float32, device="meta")
            for k, v in snnx.api.random_inputs(graph, 4, batch=2).items()
        }
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = model(xs)
        outs = out.values() if isinstance(out, dict) else [out]
        assert all(o.device.type == "meta" for o in outs), path.name
        ran += 1
    assert ran >= 25, f"only {ran} cases ran on {backend}"


def test_every_listed_command_takes_device():
    for command in ("run", "check", "stats", "bench", "convert"):
        code, out, err = snnx_cli(command, "--help")
        assert code == 0, err
        assert "--device" in out, command


def test_cli_device_errors_are_one_line(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    g = tmp_path / "g.nir"
    one_line_error(snnx_cli("run", g, "--random", 5, "--device", "tpu"), "expected cpu, cuda, cuda:N or mps")
    one_line_error(snnx_cli("run", g, "--random", 5, "--device", "cuda"), "backend 'reference' runs on cpu only")
    one_line_error(snnx_cli("stats", g, "--random", 5, "--device", "cuda:0"), "backend 'reference' runs on cpu only")
    code, out, err = snnx_cli("run", g, "--random", 5, "--backend", "snntorch", "--device", "cpu")
    assert code == 0, err
    code, out, err = snnx_cli("check", g, "--backends", "snntorch,norse", "--random", 20, "--device", "cpu")
    assert code == 0 and out.count("agree") == 2, out + err
    code, out, err = snnx_cli("stats", g, "--random", 20, "--backend", "spikingjelly", "--device", "cpu", "--json")
    assert code == 0 and '"device": "cpu"' in out, err


@no_cuda
def test_cli_cuda_without_gpu_exits_2(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    g = tmp_path / "g.nir"
    needle = "--device cuda: no CUDA device is available here (torch.cuda.is_available() is False); use --device cpu"
    one_line_error(snnx_cli("run", g, "--random", 5, "--backend", "snntorch", "--device", "cuda"), needle)
    one_line_error(snnx_cli("check", g, "--backends", "all", "--device", "cuda"), needle)
    one_line_error(snnx_cli("stats", g, "--random", 5, "--backend", "norse", "--device", "cuda"), needle)
    one_line_error(snnx_cli("bench", "--quick", "--device", "cuda", "-o", tmp_path / "b"), needle)


@needs_cuda
@pytest.mark.parametrize("backend", TORCH_BACKENDS)
def test_cuda_matches_reference(small_graph, backend):
    x = (np.random.default_rng(1).random((40, 4, 3)) < 0.5).astype(float)
    ref = snnx.simulate(small_graph, x)["output"]
    model = snnx.lower(small_graph, to=backend, device="cuda", dtype="float64")
    assert next(model.parameters()).device.type == "cuda"
    got = snnx.get_backend(backend).run(model, {"input": x})["output"]
    assert np.array_equal(got, ref)


@needs_cuda
def test_cli_check_on_cuda(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    code, out, err = snnx_cli("check", tmp_path / "g.nir", "--backends", "snntorch,norse,spikingjelly,lava-dl", "--device", "cuda")
    assert code == 0, err
    assert out.count("agree") == 3 and "CPU only" in out
