"""The built-in plugin that adds ``snnx stats`` and ``snnx bench`` to the command line.

Only click is imported at load time; numpy, torch and the backends are imported inside the commands so
that ``snnx --help`` stays fast.
"""

from __future__ import annotations

import json
import click

from snnx.hookspecs import hookimpl


@click.command(name="stats")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=".npz with one (T, batch, *shape) array per Input.")
@click.option("--random", "random_steps", type=click.IntRange(min=1), help="Use random spike input with T steps.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size for --random.")
@click.option("--rate", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Spike probability per step for --random.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", default="reference", show_default=True, help="Record the traces on this backend (a torch backend, or the reference).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int32", "int8"]), default="fp32", show_default=True, help="Bytes per value and energy per operation.")
@click.option("--analog-input/--spiking-input", "analog", default=None, help="How to count the first layer (default: spikes if the input is all 0/1).")
@click.option("--dt", type=float, default=None, help="Override the time step.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def stats_command(model, input_path, random_steps, batch, rate, seed, backend, precision, analog, dt, as_json) -> None:
    """Spikes, firing rates, synaptic operations, memory and energy of a .nir graph on an input.

    Counts are per sample, summed over the T steps; definitions and energy sources: specs/metrics.md.
    """
    from rich.console import Console

    from snnx.api import random_inputs, read_inputs
    from snnx.errors import SnnxError
    from snnx.cli import print_warnings
    from snnx.ir.io import load_with_report
    from snnx.metrics import render, stats, summary_lines, trace_module

    if (input_path is None) == (random_steps is None):
        raise click.UsageError("give exactly one of --input FILE.npz or --random T")
    graph, report = load_with_report(model, dt=dt)
    print_warnings(report.warnings)
    inputs = read_inputs(input_path, graph) if input_path else random_inputs(graph, random_steps, batch=batch, seed=seed, rate=rate)
    spiking = None if analog is None else not analog
    if backend == "reference":
        result = stats(graph, inputs, dt=dt, precision=precision, spiking_inputs=spiking)
    else:
        import numpy as np

        from snnx.api import lower

        native = lower(graph, to=backend, dt=dt)
        try:
            xs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
            import torch

            with torch.no_grad():
                _, traces = trace_module(native, {k: torch.as_tensor(v) for k, v in xs.items()})
        except SnnxError as exc:
            msg = f"cannot record traces on backend {backend!r}: {exc}"
            raise SnnxError(msg) from exc
        result = stats(graph, traces=traces, dt=dt, precision=precision, spiking_inputs=spiking)
    if as_json:
        click.echo(json.dumps({"model": model, "backend": backend, **result.to_dict()}, indent=2))
        return
    out = Console()
    if not out.is_terminal:  # a log file or a pipe: do not fold the table to 80 columns
        out = Console(width=160)
    out.print(render(result, title=f"{model} on {backend}"))
    for line in summary_lines(result):
        out.print(line)


@hookimpl
def snnx_register_commands(cli: click.Group) -> None:
    """Add ``snnx stats`` and ``snnx bench``."""
    cli.add_command(stats_command)
    from snnx.bench.cli import bench_command

    cli.add_command(bench_command)
