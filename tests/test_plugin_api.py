"""The plugin API is tested and documented (datasette-style meta-tests), and each hook works.

The meta-tests fail when someone adds a hook without a ``test_hook_<name>`` test or without a section
in ``specs/plugins.md`` that shows its exact arguments; likewise for ``Backend`` members,
``Capabilities`` fields and the plugin manager's environment variables.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sys
from pathlib import Path

import click
import nir
import numpy as np
import pytest
from click.testing import CliRunner

import snnx
import snnx.plugins
from snnx import hookspecs
from snnx.errors import PluginError
from snnx.ir.semantics import set_graph_contract
from snnx.registry import Backend, Capabilities, OnnxOpRegistrar

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "plugins.md"


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hook specification in :mod:`snnx.hookspecs`, by name."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, marker)
    }


def spec_text() -> str:
    return SPEC.read_text()


def test_there_are_hooks_to_check():
    assert {"snnx_register_backends", "snnx_register_onnx_ops", "snnx_register_commands"} <= set(hook_specs())


# -- meta-tests --------------------------------------------------------------------------------------------
def test_every_hook_has_a_test():
    tests = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        tests |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    missing = sorted(f"test_hook_{name}" for name in hook_specs() if f"test_hook_{name}" not in tests)
    assert not missing, f"hooks without a test (add them to tests/test_plugin_api.py): {missing}"


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_is_documented_with_its_signature(name):
    params = ", ".join(hook_specs()[name].parameters)
    heading = f"### `{name}({params})`"
    assert heading in spec_text().splitlines(), f"specs/plugins.md needs a section headed: {heading}"


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_every_hook_docstring_documents_its_arguments(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    for param in hook_specs()[name].parameters:
        assert f":param {param}:" in doc, f"hookspecs.{name} must document :param {param}:"


def test_no_documented_hook_is_missing_from_hookspecs():
    documented = set(re.findall(r"^### `(snnx_\w+)\(", spec_text(), flags=re.MULTILINE))
    specs = set(hook_specs())
    assert documented == specs, (
        f"specs/plugins.md documents {sorted(documented - specs)} that hookspecs lacks, "
        f"and lacks {sorted(specs - documented)}"
    )


def test_the_documented_version_is_the_code_version():
    assert f"The plugin API version is **{hookspecs.PLUGIN_API_VERSION}**" in spec_text()
    assert spec_text().startswith(f"# snnx plugin API, version {hookspecs.PLUGIN_API_VERSION}\n")


def test_every_backend_member_is_documented():
    members = [name for name in dir(Backend) if not name.startswith("_")]
    assert "lower" in members and "install_hint" in members
    missing = [name for name in members if f"`{name}`" not in spec_text() and f"`{name}(" not in spec_text()]
    assert not missing, f"Backend members not documented in specs/plugins.md: {missing}"


def test_every_capabilities_field_is_documented():
    missing = [f.name for f in dataclasses.fields(Capabilities) if f"| `{f.name}` |" not in spec_text()]
    assert not missing, f"Capabilities fields not in the table of specs/plugins.md: {missing}"


def test_every_environment_variable_is_documented():
    source = inspect.getsource(snnx.plugins) + inspect.getsource(sys.modules["snnx.registry"])
    names = set(re.findall(r"\bSNNX_[A-Z_]+\b", source))
    assert {"SNNX_DISABLE_PLUGINS", "SNNX_TRACE_PLUGINS"} <= names
    missing = sorted(n for n in names if f"| `{n}` |" not in spec_text())
    assert not missing, f"environment variables not in the table of specs/plugins.md: {missing}"


# -- the hooks themselves ----------------------------------------------------------------------------------


def tiny_graph() -> nir.NIRGraph:
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "s": nir.Scale(scale=np.array([2.0, -1.0])),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "s"), ("s", "output")],
        type_check=False,
    )
    return set_graph_contract(graph, dt=1e-4)


def test_hook_snnx_register_backends(install_plugin):
    state = install_plugin(
        "snnx_test_echo_backend",
        """
        from snnx import hookimpl
        from snnx.plugins.reference import ReferenceBackend

        class Echo(ReferenceBackend):
            name = "echo"

        @hookimpl
        def snnx_register_backends(register):
            register(Echo())
        """,
    )
    backend = snnx.get_backend("echo")
    assert backend.plugin == "snnx_test_echo_backend"
    assert state.plugins["snnx_test_echo_backend"].backends == ["echo"]
    assert state.plugins["snnx_test_echo_backend"].hooks == ["snnx_register_backends"]
    x = np.arange(6.0).reshape(3, 1, 2)
    np.testing.assert_array_equal(snnx.run(tiny_graph(), x, backend="echo")["output"], x * [2.0, -1.0])


def test_hook_snnx_register_backends_rejects_what_is_not_a_backend(install_plugin):
    state = install_plugin(
        "snnx_test_not_a_backend",
        """
        from snnx import hookimpl

        @hookimpl
        def snnx_register_backends(register):
            register(object())
        """,
    )
    error = state.plugins["snnx_test_not_a_backend"].error
    assert "plugin 'snnx_test_not_a_backend' registered <object object" in error
    assert "which is not a snnx.Backend" in error


def test_hook_snnx_register_onnx_ops(install_plugin):
    state = install_plugin(
        "snnx_test_onnx_ops",
        """
        from snnx import hookimpl

        def double(node, ctx):
            ctx.set_signal(node.output[0], ctx.signal(node.input[0]).scaled(2.0))

        @hookimpl
        def snnx_register_onnx_ops(register):
            register("Double", double, since=1, domain="com.example")
            register("Double", double, since=3, domain="com.example")
        """,
    )
    entry = state.onnx_ops.lookup("Double", 5, domain="com.example")
    assert entry is not None and entry.since == 3 and entry.plugin == "snnx_test_onnx_ops"
    assert state.onnx_ops.lookup("Double", 2, domain="com.example").since == 1
    assert state.onnx_ops.lookup("Double", 5) is None  # another domain
    assert state.plugins["snnx_test_onnx_ops"].onnx_ops == ["Double", "Double"]


def test_hook_snnx_register_onnx_ops_duplicate_names_both_plugins():
    registry = OnnxOpRegistrar(current_plugin="first")
    registry("Relu", print, since=14)
    registry.current_plugin = "second"
    with pytest.raises(PluginError, match="plugin 'second' registered ONNX op 'Relu'.*already handled by plugin 'first'"):
        registry("Relu", print, since=14)


def test_hook_snnx_register_commands(install_plugin):
    state = install_plugin(
        "snnx_test_commands",
        """
        import click
        from snnx import SnnxError, hookimpl

        @hookimpl
        def snnx_register_commands(cli):
            @cli.command()
            @click.argument("who")
            def greet(who):
                "Say hello."
                if who == "nobody":
                    raise SnnxError("cannot greet nobody")
                click.echo(f"hello {who}")
        """,
    )
    group = click.Group("snnx")
    snnx.plugins.register_commands(group)
    assert "greet" in group.commands
    assert state.plugins["snnx_test_commands"].hooks == ["snnx_register_commands"]
    result = CliRunner().invoke(group, ["greet", "world"])
    assert result.exit_code == 0 and result.output == "hello world\n"


def test_a_failing_command_registration_is_isolated(install_plugin):
    state = install_plugin(
        "snnx_test_bad_commands",
        """
        from snnx import hookimpl

        @hookimpl
        def snnx_register_commands(cli):
            raise RuntimeError("no commands today")
        """,
    )
    group = click.Group("snnx")
    snnx.plugins.register_commands(group)
    error = state.plugins["snnx_test_bad_commands"].error
    assert error == "plugin 'snnx_test_bad_commands' failed in snnx_register_commands: RuntimeError: no commands today"
    assert "convert" in group.commands  # the built-in converter's command is still there


def test_a_hookimpl_with_wrong_arguments_is_rejected_naming_plugin_and_hook(install_plugin):
    state = install_plugin(
        "snnx_test_wrong_args",
        """
        from snnx import hookimpl

        @hookimpl
        def snnx_register_backends(registrar):
            pass
        """,
    )
    error = state.plugins["snnx_test_wrong_args"].error
    assert "snnx_test_wrong_args" in error and "snnx_register_backends" in error and "registrar" in error


def test_missing_requirement_is_a_refusal_with_the_install_hint():
    class NeedsSomething(Backend):
        name = "needs-something"
        capabilities = Capabilities(node_types=frozenset({"Input", "Output", "Scale"}))
        requires = ("snnx_no_such_module_anywhere",)
        install_hint = "pip install snnx-needs-something"

    class BuiltinStyle(NeedsSomething):
        install_hint = ""

    assert NeedsSomething().refusals(tiny_graph()) == [
        "not installed: snnx_no_such_module_anywhere (pip install snnx-needs-something)"
    ]
    assert BuiltinStyle().refusals(tiny_graph()) == [
        "not installed: snnx_no_such_module_anywhere (pip install 'snnx[needs-something]')"
    ]


def test_a_crash_inside_a_backend_method_names_backend_and_plugin():
    from snnx.registry import BackendRegistrar

    class Broken(Backend):
        name = "broken"
        capabilities = Capabilities(node_types=frozenset({"Input", "Output", "Scale"}))

        def lower(self, graph, **options):
            return 1 / 0

    registrar = BackendRegistrar(current_plugin="snnx-broken")
    registrar(Broken())
    backend = registrar.backends["broken"]
    with pytest.raises(PluginError, match=r"backend 'broken' \(from plugin 'snnx-broken'\) crashed in lower: "
                       r"ZeroDivisionError: division by zero.*SNNX_DISABLE_PLUGINS=snnx-broken") as info:
        backend.lower(tiny_graph())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(snnx.SnnxError, match="cannot export models back to NIR") as info:
        backend.raise_(None)  # an SnnxError is the backend's own message and passes unchanged
    assert type(info.value) is snnx.SnnxError


def test_a_plugin_cannot_replace_a_core_command(install_plugin):
    state = install_plugin(
        "snnx_test_hijack",
        """
        import click
        from snnx import hookimpl

        @hookimpl
        def snnx_register_commands(cli):
            @cli.command(name="run")
            def hijacked():
                click.echo("not the real run")
        """,
    )
    group = click.Group("snnx")

    @group.command(name="run")
    def real_run():
        click.echo("the real run")

    snnx.plugins.register_commands(group)
    snnx.plugins.register_commands(group)  # idempotent for the plugins' own commands (main() runs it per call)
    assert CliRunner().invoke(group, ["run"]).output == "the real run\n"
    assert state.plugins["snnx_test_hijack"].error == (
        "plugin 'snnx_test_hijack' tried to replace the command 'snnx run' (from 'snnx'); "
        "plugins can only add commands: give it another name"
    )
    assert "convert" in group.commands


def test_a_plugin_may_re_add_its_own_commands(install_plugin):
    state = install_plugin(
        "snnx_test_hello",
        """
        import click
        from snnx import hookimpl

        @hookimpl
        def snnx_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello")
        """,
    )
    group = click.Group("snnx")
    snnx.plugins.register_commands(group)
    snnx.plugins.register_commands(group)
    assert state.plugins["snnx_test_hello"].error is None
    assert CliRunner().invoke(group, ["hello"]).output == "hello\n"
