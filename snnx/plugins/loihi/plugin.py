"""The Loihi plugin: registers the ``lava-dl``, ``lava`` and ``lava-float`` backends and ``snnx install lava``.

Hooks only; no Lava or torch import (the backends import them when used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snnx.errors import SnnxError
from snnx.hookspecs import hookimpl
from snnx.plugins.loihi.backends import LavaBackend, LavaDlBackend, LavaFloatBackend
from snnx.plugins.loihi import compat

if TYPE_CHECKING:  # pragma: no cover
    import click


@hookimpl
def snnx_register_backends(register) -> None:  # noqa: ANN001 - BackendRegistrar
    register(LavaDlBackend())
    register(LavaBackend())
    register(LavaFloatBackend())


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx install lava`` (creating the ``install`` group if no other plugin did)."""
    import click

    group = cli.commands.get("install")
    if group is None:

        @cli.group("install")
        def install_group() -> None:
            """Install optional heavy dependencies that need special handling."""

        group = install_group
    if not isinstance(group, click.Group):
        # Another plugin owns a plain `install` command; stay reachable without shadowing it.
        group, name = cli, "install-lava"
    else:
        name = "lava"

    @group.command(name)
    @click.option("--force", is_flag=True, help="Reinstall even if Lava already imports.")
    def install_lava(force: bool) -> None:
        """Install lava-nc 0.10 and lava-dl 0.6 into this Python (idempotent).

        They declare Python < 3.11 and old pins, so they are installed with --no-deps
        --ignore-requires-python plus the runtime dependencies their imports need; snnx patches
        their one Python 3.11 incompatibility at import time.
        """
        try:
            compat.install_lava(force=force, echo=click.echo)
        except SnnxError as exc:
            raise click.ClickException(str(exc)) from exc
