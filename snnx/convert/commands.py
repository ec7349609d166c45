"""``snnx convert``: the command over :func:`snnx.convert.convert` and :func:`snnx.convert.evaluate`."""

from __future__ import annotations

from pathlib import Path

import click

from snnx.cli import device_option
from snnx.convert.calibrate import load_npz
from snnx.convert.driver import DEFAULT_PERCENTILE
from snnx.convert.evaluate import DEFAULT_TIMESTEPS
from snnx.convert.tuning import apply_tuning, convert_kwargs, tuning_options
from snnx.errors import ConversionError


def _timesteps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        msg = f"--timesteps {text!r} must be comma-separated integers, like 4,8,16,32,64,128"
        raise ConversionError(msg) from exc
    if not steps or min(steps) < 1:
        msg = f"--timesteps {text!r} must list positive integers"
        raise ConversionError(msg)
    return steps


@click.command("convert")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Output .nir file (default: MODEL with .nir)."
)
@click.option(
    "--calib",
    type=click.Path(dir_okay=False),
    help="Calibration .npz with an array 'x' of inputs (N, *shape).",
)
@click.option(
    "--percentile",
    type=float,
    default=DEFAULT_PERCENTILE,
    show_default=True,
    help="Percentile of each activation's positive values that one spike per step stands for.",
)
@click.option("--input-shape", help="Concrete input shape for dynamic models, e.g. 1,3,224,224.")
@click.option("--calib-limit", type=click.IntRange(min=1), help="Use only the first N calibration samples.")
@click.option(
    "--evaluate",
    "evaluate_path",
    type=click.Path(dir_okay=False),
    help="Labelled .npz ('x', 'y'): print ANN vs SNN accuracy per T and spikes per layer.",
)
@click.option(
    "--timesteps",
    default=",".join(map(str, DEFAULT_TIMESTEPS)),
    show_default=True,
    help="Time windows T for --evaluate.",
)
@click.option(
    "--backend", help="Run the SNN for --evaluate on this backend (default: the reference simulator)."
)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N samples.")
@click.option(
    "--target",
    "deploy_target",
    type=click.Choice(["any", "loihi", "loihi-atrlif"]),
    default="any",
    show_default=True,
    help="Deployment target: 'loihi' resets to zero from zero state (what backend 'lava' runs); "
    "'loihi-atrlif' keeps reset subtract for Loihi 2's ATRLIF neuron (backend 'lava', Lava processes).",
)
@click.option(
    "--half-threshold-init",
    is_flag=True,
    help="With --target loihi: start every reset-to-zero population (MaxPool trees excepted) from half its "
    "threshold (ceil for --integer); the --steps fit, --finetune and --integer see it. Backend lava runs it "
    "as Lava processes (not savable as netx).",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=None,
    help="Samples per simulation for --evaluate [torch backends 256; reference: what fits 300 MB of traces].",
)
@device_option
@tuning_options
def convert_command(
    model: str,
    output: str | None,
    calib: str | None,
    percentile: float,
    input_shape: str | None,
    calib_limit: int | None,
    evaluate_path: str | None,
    timesteps: str,
    backend: str | None,
    limit: int | None,
    deploy_target: str,
    half_threshold_init: bool,
    batch_size: int | None,
    device: str,
    **tuning,
) -> None:
    """Convert a trained ONNX ANN (MODEL) into a rate-coded spiking NIR graph.

    IF neurons with reset "subtract" replace ReLUs, weights are normalised with percentiles of the
    activations on --calib data, and an integrating readout accumulates the logits: present the input
    for T steps and take the argmax of the readout. Details: specs/conversion.md.
    """
    from snnx.convert import convert, evaluate
    from snnx.device import resolve_device
    from snnx.ir.io import save

    if evaluate_path:  # a device the backend cannot use, or data without labels, fails before the conversion
        resolve_device(device, backend or "reference")
        load_npz(evaluate_path, need_labels=True, what="--evaluate")
    elif device != "cpu" or batch_size is not None:
        msg = "--device and --batch-size apply to --evaluate; add --evaluate DATA.npz"
        raise ConversionError(msg)
    steps = _timesteps(timesteps) if evaluate_path else None
    target = Path(output) if output else Path(model).with_suffix(".nir")
    if target.resolve() == Path(model).resolve():
        msg = f"output {str(target)!r} would overwrite the input model; pass -o"
        raise ConversionError(msg)
    if half_threshold_init and deploy_target != "loihi":
        msg = (
            f"--half-threshold-init applies to --target loihi (target '{deploy_target}' already starts "
            "reset-subtract populations from half their threshold); add --target loihi"
        )
        raise ConversionError(msg)
    if deploy_target == "loihi" and tuning.get("signed"):
        msg = (
            "--target loihi cannot take --signed: Loihi's CUBA neuron sends no negative spikes, and "
            "signed spikes need reset 'subtract' where the target resets to zero"
        )
        raise ConversionError(msg)
    if deploy_target == "loihi-atrlif" and tuning.get("signed"):
        msg = "--target loihi-atrlif cannot take --signed: Loihi 2's ATRLIF neuron sends no negative spikes"
        raise ConversionError(msg)
    result = convert(
        model, calib, percentile=percentile, input_shape=input_shape, calib_limit=calib_limit,
        **convert_kwargs(tuning),
    )
    result.half_threshold_init = half_threshold_init
    # The later fits see the same cut samples as the scales (--calib-limit), not the whole file.
    tuning_calib = load_npz(calib, need_labels=False, what="--calib")[0][:calib_limit] if calib and calib_limit else calib
    tuned = apply_tuning(result, tuning, model, target=deploy_target, calib=tuning_calib)
    if deploy_target != "any":
        from snnx.convert.targets import retarget

        result = retarget(result, deploy_target)
    click.echo(result.summary())
    for line in tuned:
        click.echo(line)
    if evaluate_path:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        # On stderr so the printed tables stay clean when stdout is redirected.
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("simulating", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = evaluate(
                result, model, evaluate_path, steps, backend=backend, limit=limit, progress=advance,
                batch_size=batch_size, device=device,
            )
        click.echo("")
        click.echo(report.table())
    save(result.graph, target)
    click.echo(f"wrote {target}")
    check = getattr(report, "check", None) if evaluate_path else None
    if check is not None and check.status != "agree":
        # The accuracy table is printed either way; the exit code says the backend did not match.
        click.echo(f"snnx: the {backend} sample check did not pass ({check.status}); see the line above", err=True)
        raise SystemExit(1)
