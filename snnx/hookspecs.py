"""The whole snnx plugin API: every hook a plugin may implement.

A plugin is a module (or object) with functions decorated by :data:`snnx.hookimpl` and named after the
specs below. Built-in backends are ordinary plugins; third-party ones are found through the ``snnx``
entry-point group. See ``specs/plugins.md`` for the versioned contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    import click

    from snnx.interop.base import InteropRegistrar
    from snnx.registry import BackendRegistrar, OnnxOpRegistrar

PROJECT = "snnx"

#: Version of the plugin API described in ``specs/plugins.md``. Bumped on incompatible change.
PLUGIN_API_VERSION = 1

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def snnx_register_backends(register: BackendRegistrar) -> None:
    """Register execution backends.

    :param register: call ``register(backend)`` with an instance of :class:`snnx.Backend` for each
        backend the plugin provides. The name must be unique across all plugins.
    """


@hookspec
def snnx_register_onnx_ops(register: OnnxOpRegistrar) -> None:
    """Register ONNX → NIR op handlers used by ``snnx convert``.

    :param register: call ``register(op_type, handler, since=OPSET, domain="")`` for each handler.
        ``handler(node, ctx)`` receives an ``onnx.NodeProto`` and the conversion context
        (:class:`snnx.convert.context.ConversionContext`) and adds NIR nodes to it; it reports what it
        cannot translate with ``raise ctx.fail("why")``. Set ``handler.snnx_calibrate = True`` when the
        op's output needs a calibrated firing scale (``ctx.activation_scale``). For a model of opset N
        the handler with the highest ``since <= N`` is used. A second handler for the same
        ``(domain, op_type, since)`` is an error naming both plugins.
    """


@hookspec
def snnx_register_commands(cli: click.Group) -> None:
    """Add commands to the ``snnx`` command-line interface.

    :param cli: the root :class:`click.Group`; use ``@cli.command()`` to add a command.
    """


@hookspec
def snnx_register_interop(register: InteropRegistrar) -> None:
    """Register interop profiles for ``snnx import --from NAME`` / ``snnx export --for NAME``.

    :param register: call ``register(profile)`` with an instance of :class:`snnx.interop.Profile`
        per framework: its ``import_`` rewrites that framework's NIR files into the snnx contract, its
        ``export`` rewrites a contract graph for that framework's importer, ``detect`` scores how much a
        file looks like the framework's output (``--from auto``). See ``specs/interop.md``.
    """
