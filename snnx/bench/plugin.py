"""The built-in plugin that adds ``snnx bench`` to the command line.

Only click is imported at load time; numpy, torch and the backends are imported inside the command so
that ``snnx --help`` stays fast. (``snnx stats`` is a core command in :mod:`snnx.cli`.)
"""

from __future__ import annotations

import click

from snnx.hookspecs import hookimpl


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx bench``."""
    from snnx.bench.cli import bench_command

    cli.add_command(bench_command)
