"""The built-in interop plugin: registers one profile per framework and the import/export commands.

It uses the same hooks a third-party plugin would (``snnx_register_interop``), so a plugin can add a
profile for another framework next to these.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from snnx.hookspecs import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import click

    from snnx.interop.base import InteropRegistrar


@hookimpl
def snnx_register_interop(register: InteropRegistrar) -> None:
    """Register every module of :mod:`snnx.interop.profiles` (no framework is imported here)."""
    from snnx.interop.profiles import BUILTIN_PROFILES

    for name in BUILTIN_PROFILES:
        register(importlib.import_module(f"snnx.interop.profiles.{name}").PROFILE)


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx import`` and ``snnx export``."""
    from snnx.interop.cli import export_command, import_command

    cli.add_command(import_command)
    cli.add_command(export_command)
