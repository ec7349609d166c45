"""The low-latency options of ``snnx convert``: ``--steps``, ``--signed``, ``--finetune``/``--epochs``, ``--integer``.

Kept apart from :mod:`snnx.convert.commands` so that other options can be added there independently:
:func:`tuning_options` adds the click options, :func:`convert_kwargs` picks what
:func:`snnx.convert.convert` takes, :func:`apply_tuning` runs the stages after conversion.
"""

from __future__ import annotations

import time
from typing import Any

import click
import numpy as np

from snnx.errors import ConversionError

#: The window ``--finetune`` trains for when ``--steps`` is not given.
DEFAULT_FINETUNE_STEPS = 8


def tuning_options(command):
    """Add ``--steps``, ``--per-channel``, ``--signed``, ``--finetune``, ``--epochs``, ``--no-rate-gains``,
    ``--integer`` to a click command."""
    options = [
        click.option(
            "--steps",
            type=click.IntRange(min=1),
            help="Tune the conversion for a window of this many time steps (activation scales fitted "
            "layer by layer on --calib data; the graph still runs at any T). With --target loihi the scales are then "
            "re-fitted to Loihi's reset-to-zero neuron. Not --timesteps, which lists the windows --evaluate reports.",
        ),
        click.option(
            "--per-channel",
            is_flag=True,
            help="With --steps, also try one scale per channel (per-channel IF thresholds), kept per "
            "layer where it lowers the calibration error.",
        ),
        click.option(
            "--signed",
            is_flag=True,
            help="Signed spikes: IF neurons also emit -1 to take back over-firing (contract version 2; "
            "runs on the reference, snntorch, norse and spikingjelly; the Lava backends refuse it).",
        ),
        click.option(
            "--finetune",
            "finetune_path",
            type=click.Path(dir_okay=False),
            help="Labelled .npz ('x', 'y'): quantisation-aware fine-tuning of the converted weights for "
            "the --steps window (default 8). With --target loihi it trains through Loihi's reset-to-zero "
            "neuron after the scale fit (distilling the ANN's logits at T and 2T, on the --integer grid when "
            "given) and keeps the epoch whose graph is closest to the ANN on a held-out fifth of this file.",
        ),
        click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Epochs of --finetune."),
        click.option(
            "--no-rate-gains",
            "no_rate_gains",
            is_flag=True,
            help="With --target loihi and --calib (without --steps): do not fit the reset-to-zero populations' "
            "output gains to the target-any graph's rates (specs/conversion.md §8); the graph is then only retargeted.",
        ),
        click.option(
            "--integer",
            "integer_bits",
            type=click.IntRange(min=2, max=16),
            help="All-integer graph: BITS-bit weights (2 = ternary), integer thresholds and initial states.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def convert_kwargs(tuning: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`snnx.convert.convert` among the tuning options."""
    if tuning.get("per_channel") and not tuning.get("steps"):
        msg = "--per-channel only applies with --steps"
        raise ConversionError(msg)
    return {
        "steps": tuning.get("steps"),
        "signed": bool(tuning.get("signed")),
        "per_channel": bool(tuning.get("per_channel")),
    }


def apply_tuning(result, tuning: dict[str, Any], model=None, *, target: str = "any", calib=None) -> list[str]:
    """Run ``--finetune``, the target's fits, then ``--integer`` on a conversion result (in place); lines to print.

    With ``target="loihi"`` and ``calib`` each reset-to-zero population's output gain is fitted to the
    rates the converted graph asks for (:func:`snnx.convert.rategain.fit_rate_gains`, at T = 32 and 64;
    not when ``tuning["rate_gains"]`` is False or ``tuning["no_rate_gains"]`` is set); with ``--steps``
    (and ``model``) the weights are instead re-fitted to Loihi's reset-to-zero neuron on
    the calibration samples (:func:`snnx.convert.resetzero.fit_reset_to_zero`) before ``--integer``; and
    ``--finetune`` with ``target="loihi"`` runs after that fit, through the reset-to-zero neuron
    (:func:`snnx.convert.finetune_loihi.finetune_reset_to_zero`), instead of before it. ``tuning["seed"]``
    seeds the fine-tuning (default 0).

    :param target: the ``--target`` the graph is for: it bounds the integer graph's numbers
        (:func:`snnx.convert.targets.integer_options`). ``"loihi-atrlif"`` keeps reset "subtract", so it is
        tuned like ``"any"`` (generic ``--finetune``, no reset-to-zero fit or output gains); only its
        integer options are Loihi's.
    :param calib: the ``--calib`` samples (path or array), whose precision the target may need.
    """
    lines: list[str] = []
    path, bits = tuning.get("finetune_path"), tuning.get("integer_bits")
    if tuning.get("epochs") not in (None, 5) and not path:
        msg = "--epochs only applies to --finetune"
        raise ConversionError(msg)
    loihi_finetune = bool(path) and target == "loihi"
    if path and not loihi_finetune:
        from snnx.convert.finetune import finetune

        steps = tuning.get("steps") or DEFAULT_FINETUNE_STEPS
        info = finetune(
            result, path, steps, epochs=tuning.get("epochs") or 5, seed=tuning.get("seed") or 0, teacher=model
        )
        result.stages["fine-tuning"] = info["seconds"]
        lines.append(
            f"fine-tuned for T = {steps}: {int(info['epochs'])} epochs in {info['seconds']:.1f} s, loss "
            f"{info['loss_first']:.3f} → {info['loss_last']:.3f}, training accuracy of the T-step rate model "
            f"{100 * info['train_accuracy']:.2f}%"
        )
    steps = tuning.get("steps")
    fit = target == "loihi" and steps and calib is not None and model is not None
    if tuning.get("no_rate_gains") and target != "loihi":
        msg = "--no-rate-gains only applies with --target loihi (the output gains are a reset-to-zero fit)"
        raise ConversionError(msg)
    # The gains run whenever --steps does not, so a baseline without them must say so explicitly.
    gains_on = tuning.get("rate_gains", True) and not tuning.get("no_rate_gains")
    if target == "loihi" and calib is not None and not fit and not gains_on:
        lines.append("note: target loihi: output gains not fitted (--no-rate-gains)")
    elif target == "loihi" and calib is not None and not fit:
        # The --steps fit below re-fits each population's output gain itself (its g, on a grid against
        # the ANN); the least-squares gains first made its start worse (specs/conversion.md §8).
        from snnx.convert.rategain import DEFAULT_WINDOWS, fit_rate_gains

        windows = DEFAULT_WINDOWS
        info = fit_rate_gains(result, _samples(calib), windows)
        result.stages["rate gains"] = info["seconds"]
        gains = ", ".join(f"{n} ×{g:.3g}" for n, g in info["gains"].items())
        lines.append(
            f"target loihi: output gains of the IF populations (reset to zero) fitted to the target-any graph's rates "
            f"at T = {' and '.join(map(str, windows))} in {info['seconds']:.1f} s, readout error vs that graph "
            f"(relative MSE) {info['error_before']:.4f} → {info['error_after']:.4f} ({gains or 'none kept'})"
        )
        if info["rejected"]:
            lines.append(
                f"note: target loihi: gain 1 kept for {', '.join(info['rejected'])}: their fitted gain did not "
                "bring the readout closer"
            )
        if info["silent"]:
            lines.append(f"note: target loihi: {', '.join(info['silent'])} never fired on --calib: gain 1 kept (nothing compared)")
        if info["skipped"]:
            lines.append(
                f"note: target loihi: no rate gain for {', '.join(info['skipped'])}: what they feed also reads "
                "other populations, so the gain cannot be moved into its weights exactly"
            )
    if fit:
        from snnx.convert.resetzero import fit_reset_to_zero

        info = fit_reset_to_zero(result, _samples(calib), model, steps)
        result.stages["reset-to-zero fit"] = info["seconds"]
        fitted = ", ".join(f"{n} s={s:g} g={g:g} β={b:g}" for n, (s, g, b) in info["layers"].items())
        lines.append(
            f"target loihi: scales fitted to the reset-to-zero neuron at T = {steps} and {2 * steps} in "
            f"{info['seconds']:.1f} s, readout error vs the ANN (relative MSE) {info['error_before']:.4f} → "
            f"{info['error_after']:.4f} ({fitted})"
        )
    elif target == "loihi" and steps:
        lines.append(
            "note: target loihi: the scales were not fitted to the reset-to-zero neuron (that needs calibration "
            "data and the ONNX model); pass --calib"
        )
    options: dict[str, Any] = {}
    if bits:
        from snnx.convert.targets import integer_options

        # Both Loihi targets size the first layer's integer room from the inputs' fractional bits.
        samples = _samples(calib) if target in ("loihi", "loihi-atrlif") and calib is not None else None
        options, notes = integer_options(result.graph, target, bits, samples)
    if loihi_finetune:
        if model is None:
            msg = "--finetune --target loihi distils the ANN's logits: it needs the ONNX model"
            raise ConversionError(msg)
        from snnx.convert.finetune_loihi import finetune_reset_to_zero

        steps = tuning.get("steps") or DEFAULT_FINETUNE_STEPS
        info = finetune_reset_to_zero(
            result, path, steps, teacher=model, bits=bits, integer_options=options,
            epochs=tuning.get("epochs") or 5, seed=tuning.get("seed") or 0,
        )
        result.stages["fine-tuning"] = info["seconds"]
        held = ", ".join(
            f"{e}: " + "/".join(f"{100 * a:.1f}" for a in accs) + f" % {np.mean(errors):.4f}"
            for e, (accs, errors) in enumerate(info["held_out"])
        )
        kind = f"int{bits}" if bits else "float"
        lines.append(
            f"target loihi: fine-tuned through the reset-to-zero neuron for T = {steps} and {2 * steps}: "
            f"{info['epochs']} epochs in {info['seconds']:.1f} s; held-out ({info['held_out_size']} samples, {kind} "
            f"Loihi graph) accuracy at T = {'/'.join(map(str, info['windows']))} and readout error vs the ANN per "
            f"epoch: {held}; kept epoch {info['epoch']}"
            + (" (the graph before fine-tuning)" if info["epoch"] == 0 else "")
        )
    if bits:
        from snnx.convert.integer import integerise
        from snnx.ir.validate import validate

        start = time.perf_counter()
        info = integerise(result.graph, bits, **options)
        validate(result.graph)
        result.stages["integer"] = time.perf_counter() - start
        lines.append(
            f"integer graph: {bits}-bit weights, thresholds up to {info['max_threshold']:.0f}, biases up to "
            f"{info['max_bias']:.0f}; readout v is {info['readout_gain']:.4g} × the float graph's"
            + ("; one threshold per population" if options.get("per_channel") is False else "")
        )
        lines.extend(f"note: {n}" for n in notes)
    return lines


def _samples(calib):
    """The ``--calib`` inputs as an array (``calib`` is a path or already an array)."""
    if hasattr(calib, "shape"):
        return calib
    from snnx.convert.calibrate import load_npz

    return load_npz(calib, need_labels=False, what="--calib")[0]
