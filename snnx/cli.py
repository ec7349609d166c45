"""The ``snnx`` command line: thin commands over the public API, rendered with rich.

Every user error is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from snnx.errors import SnnxError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def print_warnings(warnings, console: Console | None = None) -> None:
    """Validation warnings (unstable dt/tau, thresholds <= 0, ...), one line each, as `snnx info` shows them."""
    for warning in warnings:
        (console or err).print(f"[yellow]warning:[/] {warning}")


def _fmt_shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.version_option(package_name="snnx")
def cli(debug: bool) -> None:
    """snnx: one NIR model, an exact discrete-time meaning, every SNN framework."""


# -- info ---------------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--dt", type=float, default=None, help="Time step to assume (default: stored, else 1e-4).")
def info(model: str, dt: float | None) -> None:
    """Describe a .nir graph: nodes, shapes, parameters, contract, and which backends take it."""
    from snnx.api import prepare
    from snnx.ir.io import load_with_report
    from snnx.ir.nodes import kind_of
    from snnx.ir.semantics import DEFAULT_DT, dt_of, has_contract, producer_dt, reset_of, v_init_of
    from snnx.plugins import get_backends

    graph, report = load_with_report(model, dt=dt)
    flat = prepare(graph, dt=dt)  # what every backend receives; also the node list shown below
    table = Table(title=f"{model}", title_justify="left")
    for col in ("node", "type", "output shape", "params", "contract"):
        table.add_column(col, justify="right" if col == "params" else "left")
    total = 0
    for name in flat.schedule.order:
        node = flat.nodes[name]
        params = sum(
            int(np.asarray(v).size)
            for k, v in vars(node).items()
            if k not in ("input_type", "output_type", "metadata") and isinstance(v, np.ndarray)
        )
        total += params
        contract = ""
        if kind_of(node, name).spiking:
            contract = f"reset={reset_of(node)}"
        v0 = v_init_of(node)
        if np.any(v0 != 0):
            contract += f" v_init={float(np.mean(v0)):.3g}" + ("(mean)" if v0.size > 1 else "")
        shape = report.shapes.get(name)
        table.add_row(name, type(node).__name__, _fmt_shape(shape) if shape is not None else "?", f"{params:,}", contract.strip())
    out.print(table)
    step = dt if dt is not None else dt_of(graph)
    source = "given by --dt" if dt is not None else ("stored in the file" if has_contract(graph) else f"default {DEFAULT_DT:g}; the file has no snnx metadata")
    out.print(f"nodes: {len(flat.nodes)}   parameters: {total:,}   dt: {step:g} ({source})")
    guess = producer_dt(graph)
    if guess is not None:
        verdict = "matches" if np.isclose(guess, step) else f"differs: use --dt {guess:g}"
        out.print(f"note: every neuron has r = tau/{guess:g}, so the producer assumed dt = {guess:g} ({verdict})")
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    btable = Table(title="backends", title_justify="left")
    btable.add_column("backend")
    btable.add_column("accepts")
    btable.add_column("why not")
    for name, backend in sorted(get_backends().items()):
        reasons = backend.refusals(flat)
        btable.add_row(name, "[red]no[/]" if reasons else "[green]yes[/]", "; ".join(reasons))
    out.print(btable)


def _parse_options(pairs: tuple[str, ...]) -> dict:
    """``-O exact=true -O dtype=float64`` as backend options; values are JSON when they parse, else text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"backend options are KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


option_flag = click.option(
    "-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="Backend option passed to its lower() (repeatable), e.g. -O dtype=float64.",
)


# -- run ----------------------------------------------------------------------------------------------
def _inputs(graph, input_path: str | None, random_steps: int | None, batch: int, seed: int):
    from snnx.api import random_inputs, read_inputs

    if (input_path is None) == (random_steps is None):
        raise click.UsageError("give exactly one of --input FILE.npz or --random T")
    if input_path is not None:
        return read_inputs(input_path, graph)
    return random_inputs(graph, random_steps, batch=batch, seed=seed)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=".npz with one (T, batch, *shape) array per Input.")
@click.option("--random", "random_steps", type=click.IntRange(min=1), help="Use random spike input with T steps.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size for --random.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", default="reference", show_default=True, help="Backend to run on (see `snnx plugins`).")
@click.option("--dt", type=float, default=None, help="Override the time step.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write output traces to this .npz.")
@option_flag
def run(model, input_path, random_steps, batch, seed, backend, dt, output, options) -> None:
    """Run a .nir graph on an input and print (and optionally save) its output traces."""
    from snnx.api import run as run_graph
    from snnx.ir.io import check_writable, load_with_report, write_atomic

    graph, report = load_with_report(model, dt=dt)
    print_warnings(report.warnings)
    inputs = _inputs(graph, input_path, random_steps, batch, seed)
    if output is not None:
        check_writable(output)
    outputs = run_graph(graph, inputs, backend=backend, dt=dt, **_parse_options(options))
    table = Table(title=f"{model} on {backend}", title_justify="left")
    for col in ("output", "shape (T, batch, ...)", "sum", "nonzero"):
        table.add_column(col)
    for name, trace in outputs.items():
        table.add_row(name, _fmt_shape(trace.shape), f"{float(trace.sum()):.6g}", f"{int(np.count_nonzero(trace)):,}")
    out.print(table)
    if output is not None:
        write_atomic(output, lambda tmp: _save_npz(tmp, outputs))
        out.print(f"wrote {output}")


def _save_npz(tmp: Path, arrays: dict) -> None:
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


# -- check --------------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--backends", default=None, help="'all' or comma-separated names; omit to only validate.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False), help=".npz input (default: random spikes).")
@click.option("--random", "random_steps", type=click.IntRange(min=1), default=None, help="Random input with T steps (default 50).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dt", type=float, default=None, help="Override the time step.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(model, backends, input_path, random_steps, batch, seed, dt, as_json) -> None:
    """Validate a graph; with --backends, check each backend's spikes against the reference.

    Exits 1 when any backend disagrees with the reference.
    """
    from snnx.api import check as check_graph
    from snnx.ir.io import load_with_report
    from snnx.plugins import get_backends

    graph, report = load_with_report(model, dt=dt)
    print_warnings(report.warnings, err if as_json else out)
    if backends is None:
        out.print(f"{model}: valid ({len(report.shapes)} nodes)")
        return
    names = sorted(n for n in get_backends() if n != "reference") if backends == "all" else [b.strip() for b in backends.split(",") if b.strip()]
    if input_path is None and random_steps is None:
        random_steps = 50
    inputs = _inputs(graph, input_path, random_steps, batch, seed)
    results = check_graph(graph, names, inputs, dt=dt)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=2, default=float))
    else:
        table = Table(title=f"{model}: backends vs reference", title_justify="left")
        for col in ("backend", "result", "spike mismatches", "max abs error", "detail"):
            table.add_column(col)
        style = {
            "agree": "green", "disagree": "red", "error": "red", "approximate": "yellow",
            "refused": "yellow", "unavailable": "dim", "vacuous": "red",
        }
        for r in results:
            measured = r.status in ("agree", "disagree", "approximate", "vacuous")
            spikes = f"{r.spike_mismatches} / {r.spikes_total}" if measured else ""
            if measured and not r.spikes_total:
                spikes += " (no spikes compared)"
            err_txt = f"{r.max_abs_error:.2e}" if measured else ""
            table.add_row(r.backend, f"[{style[r.status]}]{r.status}[/]", spikes, err_txt, _first_reason(r.detail))
        out.print(table)
        groups: dict[str, list[str]] = {}
        for r in results:
            if r.compared:
                groups.setdefault(", ".join(r.compared), []).append(r.backend)
        for traces, who in groups.items():
            out.print(f"compared traces ({', '.join(who)}): {traces}")
    if any(not r.ok for r in results):
        sys.exit(1)


def _first_reason(detail: str) -> str:
    """The first of several '; '-joined reasons, so a table stays readable (--json has them all)."""
    reasons = [part for part in detail.split("; ") if part]
    if len(reasons) <= 1:
        return detail
    return f"{reasons[0]} (+{len(reasons) - 1} more: snnx info)"


# -- plugins ------------------------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def plugins(as_json: bool) -> None:
    """List loaded plugins, what they register, and any that failed to load."""
    from snnx.plugins import load_plugins

    state = load_plugins()
    if as_json:
        click.echo(json.dumps([vars(i) for i in state.plugins.values()], indent=2))
        return
    table = Table(title="snnx plugins", title_justify="left")
    for col in ("plugin", "source", "backends", "onnx ops", "status"):
        table.add_column(col)
    for info in state.plugins.values():
        ops = ", ".join(sorted(set(info.onnx_ops)))
        status = f"[red]{info.error}[/]" if info.error else "[green]ok[/]"
        table.add_row(info.name, info.source, ", ".join(info.backends), ops if len(ops) < 60 else f"{len(set(info.onnx_ops))} ops", status)
    out.print(table)


# -- lower / raise ------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--to", "backend", required=True, help="Backend to lower to (see `snnx plugins`).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Where to write the lowered model.")
@click.option("--dt", type=float, default=None, help="Override the time step.")
@option_flag
def lower(model: str, backend: str, output: str | None, dt: float | None, options: tuple[str, ...]) -> None:
    """Lower a .nir graph to a framework's native model and write it."""
    from snnx.api import lower as lower_graph
    from snnx.ir.io import check_writable, load_with_report
    from snnx.plugins import get_backend

    b = get_backend(backend)
    target = output or str(Path(model).with_suffix(b.file_suffix))
    check_writable(target)
    graph, report = load_with_report(model, dt=dt)
    print_warnings(report.warnings)
    native = lower_graph(graph, to=backend, dt=dt, **_parse_options(options))
    b.save(native, target)
    out.print(b.describe(native))
    out.print(f"wrote {target}")


@cli.command(name="raise")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The .nir file to write.")
@click.option("--from", "backend", default=None, help="Backend that wrote MODEL (default: detect).")
def raise_cmd(model: str, output: str, backend: str | None) -> None:
    """Export a lowered (and possibly trained) model back to a .nir graph."""
    from snnx.api import raise_
    from snnx.ir.io import check_writable, save
    from snnx.ir.validate import validate
    from snnx.plugins import get_backend, get_backends

    if not Path(model).is_file():
        raise SnnxError(f"no such file: '{model}'")
    check_writable(output)
    if backend is not None:
        native = get_backend(backend).load(model)
    else:
        candidates = [b for b in get_backends().values() if Path(model).suffix == b.file_suffix and b.name != "reference"]
        native, errors = None, []
        for b in candidates:
            try:
                native = b.load(model)
                backend = getattr(native, "snnx_backend", b.name)
                break
            except SnnxError as exc:
                errors.append(f"{b.name}: {exc}")
        if native is None:
            raise SnnxError(f"cannot tell which backend wrote '{model}'; pass --from NAME" + (f" ({'; '.join(errors)})" if errors else ""))
    graph = raise_(native, backend=backend)
    validate(graph)
    save(graph, output)
    out.print(f"raised {model} ({backend}) to {output}: {len(graph.nodes)} nodes")


# -- entry point --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the CLI and turn snnx errors into one line and exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if not debug:
        # Frameworks' own deprecation chatter (torch.jit, ...) is not the user's business here.
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        from snnx.plugins import register_commands

        register_commands(cli)
        result = cli.main(args=argv, prog_name="snnx", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # a command's sys.exit(code): return it, so in-process callers get it too
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        err.print("aborted")
        return 1
    except SnnxError as exc:
        if debug:
            err.print_exception()
        click.echo(f"snnx: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an snnx bug: still one line unless --debug
        if debug:
            err.print_exception()
        click.echo(f"snnx: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
