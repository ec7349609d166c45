"""The ``snnx`` command line: thin commands over the public API, rendered with rich.

Every user error is one line on stderr and exit code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import contextlib

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from snnx.ir.nodes import kind_of
    from snnx.ir.semantics import DEFAULT_DT, dt_of, has_contract, producer_dt, reset_of, v_init_of
    from snnx.plugins import get_backends

    graph, flat = _read_and_prepare(model, dt)  # flat: what every backend receives, and the node list below
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
        shape = flat.shapes.get(name)
        table.add_row(name, type(node).__name__, _fmt_shape(shape) if shape is not None else "?", f"{params:,}", contract.strip())
    out.print(table)
    step = dt if dt is not None else dt_of(graph)
    source = "given by --dt" if dt is not None else ("stored in the file" if has_contract(graph) else f"default {DEFAULT_DT:g}; the file has no snnx metadata")
    out.print(f"nodes: {len(flat.nodes)}   parameters: {total:,}   dt: {step:g} ({source})")
    guess = producer_dt(graph)
    if guess is not None:
        verdict = "matches" if np.isclose(guess, step) else f"differs: use --dt {guess:g}"
        out.print(f"note: every neuron has r = tau/{guess:g}, so the producer assumed dt = {guess:g} ({verdict})")
    if not has_contract(graph):
        from snnx.interop import guess as guess_producer

        producer = guess_producer(graph)
        if producer is not None:
            out.print(f"note: looks written by {producer.profile} ({producer.confidence:.0%} sure: {producer.reason}); "
                      f"`snnx import --from {producer.profile}` rewrites it into the snnx contract")
    for warning in flat.warnings:
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


def _parse_backend_options(pairs: tuple[str, ...], names: list[str]) -> dict[str, dict]:
    """``-O lava:weight_bits=11`` as ``{"lava": {"weight_bits": 11}}``: a check runs several backends,
    so each option names the backend whose ``lower`` it goes to."""
    options: dict[str, dict] = {}
    for pair in pairs:
        backend, sep, rest = pair.partition(":")
        if not sep or not backend or "=" not in rest:
            raise click.UsageError(f"check's backend options are BACKEND:KEY=VALUE (e.g. lava:weight_bits=11), got {pair!r}")
        if backend not in names:
            raise click.UsageError(f"option {pair!r} is for backend {backend!r}, which --backends does not name")
        options.setdefault(backend, {}).update(_parse_options((rest,)))
    return options


option_flag = click.option(
    "-O", "--option", "options", multiple=True, metavar="KEY=VALUE",
    help="Backend option passed to its lower() (repeatable), e.g. -O dtype=float64.",
)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Parse ``--device`` at once (syntax only: whether it exists depends on the backend, checked later)."""
    from snnx.device import parse_device

    return parse_device(value)


device_option = click.option(
    "--device", default="cpu", show_default=True, callback=_check_device, metavar="cpu|cuda|cuda:N|mps",
    help="Where a torch backend runs (snntorch, norse, spikingjelly); the reference and Lava run on the CPU only.",
)


# -- inputs (shared by run, check and stats) --------------------------------------------------------
@dataclass(frozen=True)
class InputChoice:
    """What the user asked to feed a graph with: an ``.npz`` file (``path``) or random spikes (``steps``)."""

    path: str | None
    steps: int | None
    batch: int
    seed: int
    rate: float = 0.5

    def check(self) -> None:
        """Refuse neither or both of ``--input`` and ``--random``."""
        if (self.path is None) == (self.steps is None):
            raise click.UsageError("give exactly one of --input FILE.npz or --random T")


def input_options(
    *,
    batch: int = 1,
    default_steps: int | None = None,
    rate: bool = False,
    input_help: str = ".npz with one (T, batch, *shape) array per Input.",
    random_help: str = "Use random spike input with T steps.",
    batch_help: str | None = "Batch size for --random.",
):
    """The ``--input/--random/--batch/--seed`` (and ``--rate``) and ``--dt`` options of a command.

    The command receives them as ``source: InputChoice`` (give it to :func:`resolve_inputs`) and ``dt``.
    ``default_steps`` is the ``--random`` used when neither ``--input`` nor ``--random`` is given
    (``None``: one of them is required).
    """
    options = [
        click.option("--input", "input_path", type=click.Path(dir_okay=False), help=input_help),
        click.option("--random", "random_steps", type=click.IntRange(min=1), default=None, help=random_help),
        click.option("--batch", type=click.IntRange(min=1), default=batch, show_default=True, help=batch_help),
    ]
    if rate:
        options.append(
            click.option(
                "--rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                help="Spike probability per step for --random.",
            )
        )
    options += [
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--dt", type=float, default=None, help="Override the time step."),
    ]

    def decorate(command):
        @functools.wraps(command)
        def wrapper(*args, input_path, random_steps, batch, seed, rate=0.5, **kwargs):
            if input_path is None and random_steps is None:
                random_steps = default_steps
            source = InputChoice(input_path, random_steps, batch, seed, rate)
            return command(*args, source=source, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def _read_and_prepare(model: str, dt: float | None):
    """The graph as stored in ``model`` and its :class:`~snnx.ir.prepare.PreparedGraph`."""
    from snnx.errors import ValidationError
    from snnx.ir.io import read_graph
    from snnx.ir.prepare import prepare

    graph = read_graph(model)
    try:
        return graph, prepare(graph, dt=dt)
    except ValidationError as exc:
        raise ValidationError(f"'{model}': {exc}", node=exc.node) from exc


def prepare_file(model: str, dt: float | None):
    """Read ``model`` and prepare it once (validate, flatten, schedule, dt); errors start with its path."""
    return _read_and_prepare(model, dt)[1]


def resolve_inputs(prepared, source: InputChoice) -> dict[str, np.ndarray]:
    """The inputs ``source`` names for ``prepared``: read from the ``.npz`` or random spikes."""
    from snnx.api import random_inputs, read_inputs

    source.check()
    if source.path is not None:
        return read_inputs(source.path, prepared)
    return random_inputs(prepared, source.steps, batch=source.batch, seed=source.seed, rate=source.rate)


# -- run ----------------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@input_options()
@click.option("--backend", default="reference", show_default=True, help="Backend to run on (see `snnx plugins`).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write output traces to this .npz.")
@option_flag
@device_option
def run(model, source: InputChoice, dt, backend, output, options, device) -> None:
    """Run a .nir graph on an input and print (and optionally save) its output traces."""
    from snnx.api import run as run_graph
    from snnx.device import resolve_device
    from snnx.ir.io import check_writable, write_atomic

    resolve_device(device, backend)  # before loading anything: a wrong device is a one-line error
    prepared = prepare_file(model, dt)
    print_warnings(prepared.warnings)
    inputs = resolve_inputs(prepared, source)
    if output is not None:
        check_writable(output)
    outputs = run_graph(prepared, inputs, backend=backend, device=device, **_parse_options(options))
    where = f" ({device})" if device != "cpu" else ""
    table = Table(title=f"{model} on {backend}{where}", title_justify="left")
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
@input_options(
    batch=4, default_steps=50, input_help=".npz input (default: random spikes).",
    random_help="Random input with T steps (default 50).", batch_help=None,
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "-O", "--option", "options", multiple=True, metavar="BACKEND:KEY=VALUE",
    help="Option for one backend's lower() (repeatable), e.g. -O lava:weight_bits=11.",
)
@device_option
def check(model, backends, source: InputChoice, dt, as_json, options, device) -> None:
    """Validate a graph; with --backends, check each backend's spikes against the reference.

    Exits 1 when any backend disagrees with the reference.
    """
    from snnx.api import check as check_graph
    from snnx.device import check_available
    from snnx.ir.io import load_with_report
    from snnx.plugins import get_backends

    check_available(device)
    if backends is None:
        _graph, report = load_with_report(model, dt=dt)
        print_warnings(report.warnings, err if as_json else out)
        out.print(f"{model}: valid ({len(report.shapes)} nodes)")
        return
    prepared = prepare_file(model, dt)
    print_warnings(prepared.warnings, err if as_json else out)
    names = sorted(n for n in get_backends() if n != "reference") if backends == "all" else [b.strip() for b in backends.split(",") if b.strip()]
    if not names:
        raise click.UsageError("--backends names no backend; give 'all' or comma-separated names (snnx plugins lists them)")
    backend_options = _parse_backend_options(options, names)
    inputs = resolve_inputs(prepared, source)
    results = check_graph(prepared, names, inputs, device=device, options=backend_options)
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
            table.add_row(r.backend, f"[{style[r.status]}]{r.status}[/]", spikes, err_txt, _first_reason(r))
        out.print(table)
        groups: dict[str, list[str]] = {}
        for r in results:
            if r.compared:
                groups.setdefault(", ".join(r.compared), []).append(r.backend)
        for traces, who in groups.items():
            out.print(f"compared traces ({', '.join(who)}): {traces}")
    if any(not r.ok for r in results):
        sys.exit(1)
    if not any(r.status in ("agree", "approximate") for r in results):
        # Every backend refused or is missing: nothing was compared, which is not a pass.
        err.print("snnx: nothing was compared: every backend refused the graph or is not installed")
        sys.exit(1)


def _first_reason(result) -> str:
    """The first of a refusal's reasons, so a table stays readable (--json has them all)."""
    if len(result.reasons) <= 1:
        return result.detail
    return f"{result.reasons[0]} (+{len(result.reasons) - 1} more: snnx info)"


# -- stats --------------------------------------------------------------------------------------------
@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@input_options(
    rate=True,
    input_help=".npz with one (T, batch, *shape) array per Input; with --timesteps also a static (batch, *shape) one.",
)
@click.option("--backend", default="reference", show_default=True, help="Record the traces on this backend (a torch backend, or the reference).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int32", "int8"]), default="fp32", show_default=True, help="Bytes per value and energy per operation.")
@click.option("--analog-input/--spiking-input", "analog", default=None, help="How to count the first layer (default: spikes if the input is all 0/1).")
@click.option(
    "--timesteps", default=None, metavar="T1,T2,...",
    help="One row per time window T: the first T steps of the input (a static (batch, *shape) input is "
    "repeated for T steps; --random needs at least the largest T), as `snnx convert --evaluate --timesteps` does.",
)
@click.option("--ann", "ann_path", type=click.Path(dir_okay=False), default=None, help="The ONNX ANN to count MACs from (default: the count `snnx convert` stored in the graph, else the graph's topology).")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), default=None, help="Class labels (.npy, or .npz with 'y'), one per sample of the input: adds the accuracy.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@device_option
def stats(model, source: InputChoice, dt, backend, precision, analog, timesteps, ann_path, labels_path, as_json, device) -> None:
    """Spikes (+/- per neuron), firing rates, synaptic operations against the ANN's MACs, memory and
    energy of a .nir graph on an input, for the whole input or per time window (--timesteps).

    Counts are per sample, summed over the T steps; definitions and energy sources: specs/metrics.md.
    """
    from snnx.device import resolve_device
    from snnx.errors import ValidationError
    from snnx.ir.reference import simulate
    from snnx.metrics import (
        Window, accuracy, backend_traces, cut, parse_windows, render, render_windows, summary_lines, window_inputs,
    )
    from snnx.metrics import stats as graph_stats

    source.check()
    windows = parse_windows(timesteps) if timesteps is not None else None
    resolve_device(device, backend)
    prepared = prepare_file(model, dt)
    print_warnings(prepared.warnings, err if as_json else out)
    inputs = resolve_inputs(prepared, source)
    if windows:
        inputs = window_inputs(prepared, inputs, windows[-1])
    else:
        for name, x in inputs.items():
            if np.ndim(x) == len(prepared.shapes[name]) + 1:
                raise ValidationError(
                    f"input {name!r} has shape {np.shape(x)}, a static (batch, *shape) input: pass --timesteps T "
                    "to present it for T steps, or give a time-major (T, batch, *shape) array",
                    node=name,
                )
    ann = None
    if ann_path is not None:
        from snnx.convert.ann_ops import count_ann_ops

        ann = count_ann_ops(ann_path)
    labels = _read_labels(labels_path) if labels_path is not None else None
    spiking = None if analog is None else not analog
    if backend == "reference":
        traces = simulate(prepared, inputs, record=True)
    else:
        traces = backend_traces(prepared, inputs, backend, device=device)
    t_all = next(iter(traces.values())).shape[0]
    steps = windows or (t_all,)
    rows = [
        Window(
            t,
            graph_stats(prepared, traces=cut(traces, t), precision=precision, spiking_inputs=spiking, ann=ann),
            accuracy(prepared, traces, labels, t) if labels is not None else None,
        )
        for t in steps
    ]
    where = f"{model} on {backend}" + (f" ({device})" if device != "cpu" else "")
    if as_json:
        head = {"model": model, "backend": backend, "device": device}
        if windows:
            body = {"windows": [{**w.row(), "stats": w.stats.to_dict()} for w in rows]}
        else:
            body = {**rows[0].stats.to_dict(), "accuracy": rows[0].accuracy}
        click.echo(json.dumps(_finite_or_null({**head, **body}), indent=2, allow_nan=False))
        return
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: do not fold the table to 80 columns
        console = Console(width=160)
    if windows:
        console.print(render_windows(rows, title=where))
        return
    result = rows[0].stats
    console.print(render(result, title=where))
    for line in summary_lines(result):
        console.print(line)
    if rows[0].accuracy is not None:
        console.print(f"accuracy {100 * rows[0].accuracy:.2f}% on {result.batch} samples")


def _read_labels(path: str) -> np.ndarray:
    """Integer class labels from a ``.npy``, or an ``.npz`` holding ``y`` (or a single array)."""
    if not Path(path).is_file():
        raise SnnxError(f"--labels: no such file: '{path}'")
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as exc:
        raise SnnxError(f"--labels: cannot read '{path}' as .npy or .npz ({exc})") from exc
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if "y" in loaded.files:
            return loaded["y"]
        if len(loaded.files) == 1:
            return loaded[loaded.files[0]]
        raise SnnxError(f"--labels: '{path}' holds arrays {sorted(loaded.files)}; name the labels 'y'")


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
    from snnx.ir.io import check_writable
    from snnx.plugins import get_backend

    b = get_backend(backend)
    target = output or str(Path(model).with_suffix(b.file_suffix))
    if Path(target).resolve() == Path(model).resolve():
        raise SnnxError(f"lowering {model!r} to {backend!r} would overwrite the input file; pass -o OTHER{b.file_suffix}")
    check_writable(target)
    prepared = prepare_file(model, dt)
    print_warnings(prepared.warnings)
    native = lower_graph(prepared, to=backend, **_parse_options(options))
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


def _finite_or_null(value: Any) -> Any:
    """``value`` with every inf/NaN float as None: strict JSON has no Infinity (a ratio over zero ANN ops)."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


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
        # A graph whose numbers overflow gives inf/NaN, which every command reports as such (check counts
        # them as disagreement); numpy's own RuntimeWarnings on the way add only noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore") if not debug else contextlib.nullcontext():
            result = cli.main(args=argv, prog_name="snnx", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # a command's sys.exit(code): return it, so in-process callers get it too
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except click.UsageError as exc:
        # One line, like every other error; `--help` shows the usage.
        where = f"snnx {exc.ctx.command_path.split(' ', 1)[1]}" if exc.ctx and " " in exc.ctx.command_path else "snnx"
        click.echo(f"snnx: error: {exc.format_message()} (see `{where} --help`)", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"snnx: error: {exc.format_message()}", err=True)
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
