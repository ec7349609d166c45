"""Real third-party plugins, installed for real, that are broken in the ways plugins break.

Each plugin is a module plus a ``*.dist-info`` directory with an ``entry_points.txt`` in a temporary
site directory: exactly what ``pip install`` leaves behind, found by ``importlib.metadata`` through
``PYTHONPATH``. The CLI runs in a subprocess, as a user would run it, so nothing leaks between tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nir
import numpy as np
import pytest

import snnx
from snnx.ir.semantics import set_graph_contract, set_node_contract

#: The reference backend, re-registered under another name: a plugin that works.
GOOD = """
from snnx import hookimpl
from snnx.plugins.reference import ReferenceBackend

class GoodBackend(ReferenceBackend):
    name = "good"
    description = "a working third-party backend"

@hookimpl
def snnx_register_backends(register):
    register(GoodBackend())
"""

FAILS_AT_IMPORT = """
import snnx

raise RuntimeError("this plugin is broken on purpose")
"""

DUPLICATE_NAME = """
from snnx import hookimpl
from snnx.plugins.reference import ReferenceBackend

class Impostor(ReferenceBackend):
    description = "claims the built-in name 'reference'"

@hookimpl
def snnx_register_backends(register):
    register(Impostor())
"""

CRASHES_IN_LOWER = """
from snnx import hookimpl
from snnx.plugins.reference import ReferenceBackend

class Crashy(ReferenceBackend):
    name = "crashy"

    def lower(self, graph, **options):
        return {}["a key this backend forgot"]

@hookimpl
def snnx_register_backends(register):
    register(Crashy())
"""

TYPO_IN_HOOK = """
from snnx import hookimpl

@hookimpl
def snnx_register_backend(register):  # missing the final "s"
    raise AssertionError("an unknown hook must never be called")
"""

PLUGINS = {
    # entry-point name: (distribution, module, source)
    "good": ("snnx-good", "snnx_good", GOOD),
    "fails-at-import": ("snnx-fails-at-import", "snnx_fails_at_import", FAILS_AT_IMPORT),
    "duplicate-name": ("snnx-duplicate-name", "snnx_duplicate_name", DUPLICATE_NAME),
    "crashes-in-lower": ("snnx-crashes-in-lower", "snnx_crashes_in_lower", CRASHES_IN_LOWER),
    "typo-in-hook": ("snnx-typo-in-hook", "snnx_typo_in_hook", TYPO_IN_HOOK),
    # a packaging slip: the entry point names a module the wheel does not contain
    "module-not-shipped": ("snnx-module-not-shipped", "snnx_module_not_shipped", None),
}


def install(site: Path, ep_name: str, dist: str, module: str, source: str | None) -> None:
    """Write what ``pip install`` of a one-module plugin package leaves in site-packages."""
    if source is not None:
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[snnx]\n{ep_name} = {module}\n")
    (info / "top_level.txt").write_text(f"{module}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site-packages")
    for ep_name, (dist, module, source) in PLUGINS.items():
        install(root, ep_name, dist, module, source)
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    n = 3
    lif = set_node_contract(
        nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 20.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                v_reset=np.zeros(n)),
        reset="value",
    )
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif, "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "output")],
        type_check=False,
    )
    path = tmp_path_factory.mktemp("model") / "model.nir"
    snnx.save(set_graph_contract(graph, dt=1e-4), path)
    return path


def snnx_cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``snnx ARGS`` with the plugins in ``site`` installed."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SNNX_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    environ["COLUMNS"] = "400"  # rich wraps tables and tracebacks (paths included) to 80 columns in a pipe
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "snnx.cli", *args], check=False, capture_output=True, text=True, env=environ, timeout=300
    )


@pytest.fixture(scope="module")
def listing(site: Path) -> dict[str, dict]:
    """``snnx plugins --json`` with every plugin installed, by plugin name."""
    result = snnx_cli(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_a_working_plugin_loads_beside_broken_ones(listing):
    good = listing["good"]
    assert good["error"] is None
    assert good["backends"] == ["good"]
    assert good["source"] == "entry point snnx_good (snnx-good 0.1.0)"
    assert listing["snnx.plugins.reference"]["backends"] == ["reference"]


def test_plugin_that_raises_at_import_is_reported_by_name(listing):
    error = listing["fails-at-import"]["error"]
    assert error.startswith("error loading snnx plugin 'fails-at-import' (snnx_fails_at_import)")
    assert "RuntimeError: this plugin is broken on purpose" in error
    assert "SNNX_DISABLE_PLUGINS=fails-at-import" in error
    assert listing["fails-at-import"]["backends"] == []


def test_entry_point_to_a_module_that_is_not_installed_is_reported_by_name(listing):
    error = listing["module-not-shipped"]["error"]
    assert error.startswith("error loading snnx plugin 'module-not-shipped' (snnx_module_not_shipped)")
    assert "ModuleNotFoundError: No module named 'snnx_module_not_shipped'" in error


def test_plugin_that_takes_a_used_backend_name_is_reported_and_the_first_one_kept(site, listing, model):
    error = listing["duplicate-name"]["error"]
    assert "plugin 'duplicate-name' registered backend 'reference'" in error
    assert "already taken by plugin 'snnx.plugins.reference'" in error
    assert listing["duplicate-name"]["backends"] == []
    ran = snnx_cli(site, "run", str(model), "--random", "5", "--backend", "reference")
    assert ran.returncode == 0, ran.stderr


def test_unknown_hook_name_is_reported_naming_plugin_and_hook(listing):
    error = listing["typo-in-hook"]["error"]
    assert "plugin 'typo-in-hook' implements unknown hook(s) snnx_register_backend;" in error
    assert "snnx_register_backends" in error  # the hook the author meant is among those listed


def test_the_table_shows_every_broken_plugin_with_its_error(site):
    result = snnx_cli(site, "plugins")
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    for name in ("fails-at-import", "duplicate-name", "typo-in-hook"):
        assert name in flat


def test_backend_that_crashes_in_lower_gives_one_line_naming_it(site, model):
    lowered = str(model.with_name("lowered.nir"))  # crashy writes .nir: without -o it would be the input
    for args in (["run", str(model), "--random", "5", "--backend", "crashy"], ["lower", str(model), "--to", "crashy", "-o", lowered]):
        result = snnx_cli(site, *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "backend 'crashy' (from plugin 'crashes-in-lower') crashed in lower: KeyError" in result.stderr
        assert "SNNX_DISABLE_PLUGINS=crashes-in-lower" in result.stderr


def test_check_reports_the_crash_and_still_checks_the_other_backends(site, model):
    result = snnx_cli(site, "check", str(model), "--backends", "crashy,good", "--json")
    assert result.returncode == 1  # one backend did not agree
    rows = {row["backend"]: row for row in json.loads(result.stdout)}
    assert rows["good"]["status"] == "agree"
    assert rows["crashy"]["status"] == "error"
    assert "crashed in lower" in rows["crashy"]["detail"]


def test_debug_shows_the_plugin_traceback(site, model):
    result = snnx_cli(site, "--debug", "run", str(model), "--random", "5", "--backend", "crashy")
    assert result.returncode == 2
    assert "snnx_crashes_in_lower.py" in result.stderr  # the chained original exception


def test_disable_named_plugins(site):
    result = snnx_cli(site, "plugins", "--json", SNNX_DISABLE_PLUGINS="fails-at-import, duplicate-name")
    names = {entry["name"] for entry in json.loads(result.stdout)}
    assert "fails-at-import" not in names and "duplicate-name" not in names
    assert {"good", "crashes-in-lower", "snnx.plugins.reference"} <= names


def test_disable_every_external_plugin(site, model):
    result = snnx_cli(site, "plugins", "--json", SNNX_DISABLE_PLUGINS="*")
    entries = json.loads(result.stdout)
    assert entries and all(entry["source"] == "builtin" for entry in entries)
    assert all(entry["error"] is None for entry in entries)
    ran = snnx_cli(site, "run", str(model), "--random", "5", SNNX_DISABLE_PLUGINS="*")
    assert ran.returncode == 0, ran.stderr


def test_trace_plugins_raises_the_import_error_for_authors(site):
    others = ",".join(name for name in PLUGINS if name not in ("fails-at-import", "good"))
    result = snnx_cli(site, "--debug", "plugins", SNNX_TRACE_PLUGINS="1", SNNX_DISABLE_PLUGINS=others)
    assert result.returncode == 1
    assert "this plugin is broken on purpose" in result.stderr
    assert "snnx_fails_at_import.py" in result.stderr


@pytest.mark.slow
def test_example_plugin_packages_install_pass_their_tests_and_uninstall_cleanly():
    """``examples/check-example-plugins.sh``: fresh venv, install, list, lower, tests + kit, uninstall.

    snnx goes in editable, as ``make setup`` installs it; the script's default (a regular install)
    additionally needs the conformance cases declared as package data.
    """
    script = Path(__file__).resolve().parent.parent / "examples" / "check-example-plugins.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNNX_")}
    env.update(SNNX_EDITABLE="1", PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(script)], check=False, capture_output=True, text=True, env=env, timeout=1800
    )
    assert result.returncode == 0, (result.stdout[-6000:], result.stderr[-3000:])
    assert "check-example-plugins: OK" in result.stdout
