"""The README's lowering example runs, as written, for every backend it names."""

import contextlib
import io
import re
from pathlib import Path

import nir
import numpy as np
import pytest

import snnx
from snnx.ir.semantics import set_graph_contract

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> tuple[str, list[str]]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (code,) = [b for b in blocks if 'snnx.lower(graph, to="snntorch")' in b]
    line = next(ln for ln in code.splitlines() if 'snnx.lower(graph, to="snntorch")' in ln)
    return code, ["snntorch", *re.findall(r'"([a-z-]+)"', line.split("#", 1)[1])]


CODE, BACKENDS = _example()


def _model(path: Path) -> None:
    """A conv chain every named backend takes: (1, 8, 8) -> conv -> LIF -> flatten -> dense -> LIF."""
    rng = np.random.default_rng(0)

    def lif(shape):
        return nir.LIF(tau=np.full(shape, 1e-2), r=np.full(shape, 10.0), v_leak=np.zeros(shape),
                       v_threshold=np.full(shape, 0.5), v_reset=np.zeros(shape))

    nodes = {
        "input": nir.Input(input_type=np.array([1, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.uniform(-0.2, 1.0, (4, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "lif1": lif((4, 8, 8)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 8, 8])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.uniform(-0.05, 0.1, (3, 256))),
        "lif2": lif((3,)),
        "output": nir.Output(output_type=np.array([3])),
    }
    names = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata={}, type_check=False)
    snnx.save(set_graph_contract(g, dt=1e-3), path)


def test_the_example_names_the_four_training_backends():
    assert BACKENDS == ["snntorch", "norse", "spikingjelly", "lava-dl"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_readme_lowering_example_runs(backend, tmp_path, monkeypatch):
    b = snnx.get_backend(backend)
    if b.missing_requirements():
        pytest.skip(f"{backend} is not installed: {b.missing_requirements()}")
    _model(tmp_path / "model.nir")
    monkeypatch.chdir(tmp_path)
    code = CODE.replace('to="snntorch"', f'to="{backend}"')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    assert out.getvalue().strip().splitlines()[-1] == "True", out.getvalue()
    assert (tmp_path / "trained.nir").is_file()


def test_lava_dl_model_is_time_major_and_keeps_the_native_slayer_network(tmp_path):
    import torch

    b = snnx.get_backend("lava-dl")
    if b.missing_requirements():
        pytest.skip("lava-dl is not installed")
    _model(tmp_path / "model.nir")
    model = snnx.lower(tmp_path / "model.nir", to="lava-dl")
    x = (np.random.default_rng(1).random((20, 4, 1, 8, 8)) < 0.5).astype(np.float64)
    y = model(torch.as_tensor(x)).detach().numpy()
    assert y.shape == (20, 4, 3)
    assert np.array_equal(y, b.run(model, {"input": x})["output"])
    assert np.array_equal(y, snnx.simulate(snnx.load(tmp_path / "model.nir"), x)["output"])
    native = model.slayer(torch.as_tensor(np.moveaxis(x, 0, -1)))  # SLAYER layout: time last
    assert np.array_equal(native.detach().numpy().reshape(4, 3, 20), np.moveaxis(y, 0, -1))
    assert list(model.slayer.parameters())[0] is list(model.blocks.parameters())[0]
