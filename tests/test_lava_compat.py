"""The runtime patch that makes lava-nc 0.10 import on Python 3.11, and ``snnx install lava``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from snnx.plugins.loihi import compat as lava_compat

LAVA_REASON = lava_compat.lava_available()
needs_lava = pytest.mark.skipif(LAVA_REASON is not None, reason=f"Lava not importable: {LAVA_REASON}")

BROKEN = '''
from dataclasses import dataclass

@dataclass
class ByteEncoder:
    base: int = 0

@dataclass
class CoreEncoder:
    """doc"""
    x: ByteEncoder = ByteEncoder()
    y : ByteEncoder  =  ByteEncoder()
    n: int = 3
'''


def test_patch_source_makes_mutable_defaults_factories() -> None:
    with pytest.raises(ValueError, match="mutable default"):
        exec(compile(BROKEN, "<broken>", "exec"), {})
    fixed = lava_compat.patch_source(BROKEN)
    assert fixed.count("\n") == BROKEN.count("\n"), "line numbers must survive for tracebacks"
    namespace: dict = {}
    exec(compile(fixed, "<fixed>", "exec"), namespace)
    enc_a, enc_b = namespace["CoreEncoder"](), namespace["CoreEncoder"]()
    assert enc_a.x is not enc_b.x
    assert enc_a.n == 3
    assert dataclasses.fields(namespace["CoreEncoder"])[0].default_factory is namespace["ByteEncoder"]


def test_patch_source_leaves_other_code_alone() -> None:
    src = "x = Foo()\nclass A:\n    y: int = 3\n    def f(self):\n        z = Bar()\n"
    assert lava_compat.patch_source(src) == src


def test_patch_source_forces_the_fork_start_method() -> None:
    src = "import platform\nif platform.system() != 'Windows':\n    mp.set_start_method('fork')\n"
    fixed = lava_compat.patch_source(src)
    assert fixed == src.replace("('fork')", "('fork', force=True)")
    assert lava_compat.patch_source(fixed) == fixed


def test_patch_source_drops_numpy_newshape() -> None:
    """numpy 2.4 removed ``np.reshape(..., newshape=)``, which Lava's ReshapePort (netx flatten) used."""
    import functools as ft

    import numpy as np

    src = "    def f(self):\n        return ft.partial(np.reshape, newshape=self.shape)\n"
    fixed = lava_compat.patch_source(src)
    assert "newshape" not in fixed and fixed.count("\n") == src.count("\n")
    namespace: dict = {"ft": ft, "np": np}
    exec(compile("class P:\n    shape = (2, 3)\n" + fixed, "<fixed>", "exec"), namespace)
    transform = namespace["P"]().f()
    assert transform(np.arange(6)).shape == (2, 3)
    assert lava_compat.patch_source(fixed) == fixed


def test_ensure_patched_is_idempotent() -> None:
    lava_compat.ensure_patched()
    lava_compat.ensure_patched()
    finders = [f for f in sys.meta_path if isinstance(f, lava_compat.LavaCompatFinder)]
    assert len(finders) == 1


@pytest.mark.lava
@needs_lava
def test_var_model_imports_only_with_the_patch() -> None:
    unpatched = subprocess.run(
        [sys.executable, "-c", "import lava.magma.compiler.var_model"], capture_output=True, text=True
    )
    assert unpatched.returncode != 0
    assert "mutable default" in unpatched.stderr
    patched = subprocess.run(
        [sys.executable, "-c",
         "import snnx.plugins.loihi.compat as c; c.ensure_patched(); import lava.magma.compiler.var_model as v;"
         "a, b = v.CoreEncoder(), v.CoreEncoder(); assert a.x is not b.x; print('ok')"],
        capture_output=True, text=True,
    )
    assert patched.returncode == 0, patched.stderr
    assert patched.stdout.strip().endswith("ok")


@pytest.mark.lava
@needs_lava
def test_lava_imports_after_a_start_method_was_set() -> None:
    """Lava sets the 'fork' start method at import, which raised in spawned processes (snnx bench)."""
    code = (
        "import multiprocessing as mp; mp.set_start_method('spawn');"
        "import snnx.plugins.loihi.compat as c; c.import_lava('lava.lib.dl.netx'); print(mp.get_start_method())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("fork")


def test_install_runs_pip_with_the_documented_flags() -> None:
    calls: list[list[str]] = []
    lines: list[str] = []

    def runner(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    if LAVA_REASON is None:
        assert lava_compat.install_lava(echo=lines.append, runner=runner) is False
        assert calls == []
        assert "nothing to do" in lines[-1]
        lava_compat.install_lava(force=True, echo=lines.append, runner=runner)
    else:
        with pytest.raises(lava_compat.SnnxError, match="still not importable"):
            lava_compat.install_lava(echo=lines.append, runner=runner)
    first, second = calls[0], calls[1]
    assert first[:4] == [sys.executable, "-m", "pip", "install"]
    assert {"--no-deps", "--ignore-requires-python", "lava-nc==0.10.0", "lava-dl==0.6.0"} <= set(first)
    assert any(a.startswith("asteval") for a in second)
    assert any(line.startswith("$ ") and "--ignore-requires-python" in line for line in lines)


def test_install_reports_pip_failure() -> None:
    with pytest.raises(lava_compat.SnnxError, match="pip failed with exit code 1"):
        lava_compat.install_lava(force=True, echo=lambda _l: None, runner=lambda _argv: 1)


@pytest.mark.lava
@needs_lava
def test_snnx_install_lava_twice() -> None:
    from snnx.plugins.loihi import plugin as lava_plugin

    @click.group()
    def cli() -> None:
        """test root"""

    lava_plugin.snnx_register_commands(cli)
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(cli, ["install", "lava"])
        assert result.exit_code == 0, result.output
        assert "already installed" in result.output


@pytest.mark.lava
@needs_lava
def test_module_entry_point_for_ci() -> None:
    """``python -m snnx.plugins.loihi.compat`` (what scripts/install-lava.sh runs) works without the CLI."""
    proc = subprocess.run([sys.executable, "-m", "snnx.plugins.loihi.compat"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "snnx.plugins.loihi.compat", "--frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown arguments" in bad.stderr
