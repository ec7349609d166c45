"""``snnx import`` and ``snnx export``: the commands over :mod:`snnx.interop`."""

from __future__ import annotations

import json
from typing import Any

import click

from snnx.interop.base import Converted, InteropError


def _assumptions(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-A reset=zero -A dt=1e-3``: values are JSON when they parse (numbers), else text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InteropError(f"--assume takes KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _version_notes(profile_name: str | None) -> list[str]:
    """A note per package whose installed version differs from the one the profile was verified with."""
    import importlib.metadata

    from snnx.interop import get_profiles

    profile = get_profiles().get(profile_name or "")
    notes = []
    for package, verified in (profile.verified if profile else {}).items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue  # reading or writing a file needs no framework installed
        if installed.split("+")[0] != verified:
            notes.append(f"note: the {profile_name} profile was verified with {package} {verified}; {installed} is installed")
    return notes


def _report(result: Converted, output: str) -> None:
    for line in _version_notes(result.profile):
        click.echo(f"  {line}")
    for line in result.notes:
        click.echo(f"  {line}")
    for line in result.assumed:
        click.echo(f"  assumed: {line}")
    click.echo(f"wrote {output}")


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--from", "source", required=True, metavar="NAME",
              help="Framework that wrote FILE (snntorch, norse, spikingjelly, sinabs, rockpool, ...) or auto.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .nir file to write.")
@click.option("-A", "--assume", "assume", multiple=True, metavar="KEY=VALUE",
              help="Override a default assumed where the file is silent, e.g. -A reset=zero or -A dt=1e-3.")
def import_command(file: str, source: str, output: str, assume: tuple[str, ...]) -> None:
    """Rewrite a framework's NIR file into the snnx contract so `snnx run` reproduces its forward."""
    from snnx.interop import import_graph
    from snnx.ir.io import check_writable, read_graph, save

    check_writable(output)
    # Read without validating: peers' files may break NIR's rules (batch dims in types) until fixed.
    graph = read_graph(file)
    result = import_graph(graph, source, _assumptions(assume))
    save(result.graph, output)
    detected = " (detected)" if source == "auto" else ""
    click.echo(f"imported {file} as written by {result.profile}{detected}:")
    _report(result, output)


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--for", "target", required=True, metavar="NAME",
              help="Framework whose own NIR importer will load the output (snntorch, norse, spikingjelly, ...).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .nir file to write.")
def export_command(file: str, target: str, output: str) -> None:
    """Write FILE for a framework's own importer so it runs with the reference's spikes (or refuse)."""
    from snnx.interop import export_graph
    from snnx.ir.io import check_writable, load, save

    check_writable(output)
    result = export_graph(load(file), target)
    save(result.graph, output)
    click.echo(f"exported {file} for {target}'s importer:")
    _report(result, output)
