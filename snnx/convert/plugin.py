"""The built-in conversion plugin: registers the op handlers and the ``snnx convert`` command.

It uses the same hooks a third-party plugin would, so the built-in handlers get no special treatment:
a plugin can add ops (or newer opset versions of them) next to these.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from snnx.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import click

    from snnx.registry import OnnxOpRegistrar


@hookimpl
def snnx_register_onnx_ops(register: OnnxOpRegistrar) -> None:
    """Register every handler of :mod:`snnx.convert.ops` (each family module imported explicitly)."""
    from snnx.convert import ops

    for family in ops.FAMILIES:
        module = importlib.import_module(f"snnx.convert.ops.{family}")
        for spec in ops.COLLECTED:
            if spec.handler.__module__ == module.__name__:
                register(spec.op_type, spec.handler, since=spec.since, domain=spec.domain)


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx convert``."""
    from snnx.convert.commands import convert_command

    cli.add_command(convert_command)
