"""Rendering of a :class:`~snnx.bench.result.BenchResult`: rich tables, Markdown, PNG plots (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from snnx.bench.result import BenchResult

STATUS_STYLE = {"ok": "green", "refused": "yellow", "unavailable": "dim", "error": "red"}


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def _multi_seed(result: BenchResult) -> bool:
    """Whether the run had several seeds: then the tables get a seed column and a summary."""
    return len(result.seeds) > 1


def _seed_label(result: BenchResult, row: Any) -> str:
    return f" s{row.seed}" if _multi_seed(result) else ""


def direct_rows(result: BenchResult) -> list[list[str]]:
    """The direct-training table as rows of strings (header first); a seed column with several seeds."""
    multi = _multi_seed(result)
    loihi = any(getattr(r, "loihi_samples", 0) or getattr(r, "loihi_detail", "") for r in result.direct)
    rows = [[
        "dataset", "backend", *(["seed"] if multi else []), "status", "train s/epoch", "last epoch s", "infer ms/sample", "test acc",
        *(["Loihi acc", "Loihi vs trained"] if loihi else []), "spikes/sample", "SOPs/sample", "MACs/sample", "peak MB", "detail",
    ]]
    cuda = any(getattr(r, "peak_cuda_memory_mb", 0.0) for r in result.direct)
    if cuda:  # only on a GPU run: the column would be all zeros on the CPU
        rows[0].insert(-1, "peak CUDA MB")
    for r in result.direct:
        ok = r.status == "ok"
        rows.append([
            r.dataset,
            r.backend,
            *([str(r.seed)] if multi else []),
            r.status,
            f"{r.train_seconds_per_epoch:.2f}" if ok else "",
            f"{r.epoch_seconds[-1]:.2f}" if ok and r.epoch_seconds else "",
            f"{r.infer_ms_per_sample:.3f}" if ok else "",
            f"{100 * r.test_accuracy:.2f}%" if ok else "",
            *(_loihi_cells(r) if loihi else []),
            _si(r.spikes_per_sample) if ok else "",
            _si(r.sops_per_sample) if ok else "",
            _si(r.macs_per_sample) if ok else "",
            f"{r.peak_memory_mb:.0f}" if ok else "",
            *([f"{r.peak_cuda_memory_mb:.0f}" if ok else ""] if cuda else []),
            r.detail.splitlines()[0] if r.detail else "",
        ])
    return rows


def _loihi_cells(row: Any) -> list[str]:
    """"Loihi acc" and "Loihi vs trained": the deployed accuracy, or why there is none; then the change
    against the trained model on the same samples, how many samples are classified alike and how many
    output spikes are equal."""
    if row.status != "ok":
        return ["", ""]
    if not row.loihi_samples:
        return [row.loihi_detail, ""]
    delta = 100 * (row.loihi_accuracy - row.loihi_trained_accuracy)
    return [
        f"{100 * row.loihi_accuracy:.2f}%",
        f"{delta:+.2f} pp, {100 * row.loihi_agreement:.1f}% same class"
        + ("" if row.loihi_spike_agreement is None else f", {100 * row.loihi_spike_agreement:.1f}% same spikes")
        + f" (n={row.loihi_samples})",
    ]


def direct_summary_rows(result: BenchResult) -> list[list[str]]:
    """Mean ± sample std across seeds per backend (header first); only the header for a single seed."""
    rows = [["dataset", "backend", "seeds ok", "test acc (mean ± std)", "train s/epoch (mean ± std)"]]
    if not _multi_seed(result):
        return rows

    def fmt(mean: float | None, std: float | None, scale: float, digits: int, unit: str = "") -> str:
        if mean is None:
            return ""
        text = f"{scale * mean:.{digits}f}"
        return text + (f" ± {scale * std:.{digits}f}" if std is not None else "") + unit

    for s in result.direct_summary():
        rows.append([
            s.dataset, s.backend, f"{s.n}/{s.n + s.failed}",
            fmt(s.test_accuracy_mean, s.test_accuracy_std, 100, 2, "%"),
            fmt(s.train_seconds_per_epoch_mean, s.train_seconds_per_epoch_std, 1, 2),
        ])
    return rows


def conversion_rows(result: BenchResult) -> list[list[str]]:
    """The conversion table: one row per (ANN, seed, percentile, T); a seed column with several seeds."""
    multi = _multi_seed(result)
    rows = [[
        "dataset", "ANN", *(["seed"] if multi else []), "pct", "T", "ANN acc", "SNN acc", "agree", "spikes",
        "spk/neuron +/−", "SOPs", "SNN MACs", "ANN MACs", "SNN ops/ANN MAC", "ANN/SNN ops (MAC=4 SOPs)",
        "E_SNN nJ", "E_ANN/E_SNN", "peak MB",
    ]]
    for r in result.conversion:
        seed = [str(r.seed)] if multi else []
        label = r.ann if r.backend == "reference" else f"{r.ann} on {r.backend}"
        if r.status != "ok":
            rows.append([r.dataset, label, *seed, f"{r.percentile:g}", *[""] * 13, r.detail])
            continue
        if r.backend != "reference":
            # Measured on few images, without spike counts: the row says what was run.
            for p in r.points:
                speed = r.test_samples * p.steps / r.simulate_seconds if r.simulate_seconds else 0.0
                rows.append([
                    r.dataset, label, *seed, f"{r.percentile:g}", str(p.steps),
                    f"{100 * r.ann_accuracy:.2f}%", f"{100 * p.snn_accuracy:.2f}%", f"{100 * p.agreement:.1f}%",
                    *[""] * 9, f"{r.detail}; {speed:.0f} steps/s (lowering included)",
                ])
            continue
        for p in r.points:
            rows.append([
                r.dataset, r.ann, *seed, f"{r.percentile:g}", str(p.steps), f"{100 * r.ann_accuracy:.2f}%",
                f"{100 * p.snn_accuracy:.2f}%", f"{100 * p.agreement:.1f}%", _si(p.spikes),
                f"{p.positive_per_neuron:.2f} / {p.negative_per_neuron:.2f}", _si(p.sops), _si(p.macs),
                _si(r.ann_macs), f"{p.sop_mac_ratio:.3g}", f"{p.low_bit_ratio:.3g}", f"{p.snn_energy_nj:.3g}",
                f"{p.energy_ratio:.3g}", f"{r.peak_memory_mb:.0f}",
            ])
    return rows


def rich_tables(result: BenchResult) -> list[Any]:
    """Rich tables for the terminal."""
    tables = []
    if result.direct:
        rows = direct_rows(result)
        # Colour the status column by outcome.
        i = rows[0].index("status")
        body = [[*row[:i], f"[{STATUS_STYLE.get(row[i], '')}]{row[i]}[/]", *row[i + 1 :]] for row in rows[1:]]
        tables.append(_rich_table("direct training: one NIR SNN, every backend (per test sample)", rows[0], body))
        summary = direct_summary_rows(result)
        if len(summary) > 1:
            title = f"direct training across {len(result.seeds)} seeds (mean ± sample std of the seeds that finished)"
            tables.append(_rich_table(title, summary[0], summary[1:]))
    if result.conversion:
        rows = conversion_rows(result)
        title = "conversion: ONNX ANN -> NIR SNN (per test sample, energy cmos45 fp32)"
        tables.append(_rich_table(title, rows[0], rows[1:]))
    return tables


def _rich_table(title: str, header: list[str], body: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in header:
        table.add_column(col, overflow="fold")
    for row in body:
        table.add_row(*row)
    return table


def markdown(result: BenchResult) -> str:
    """Both tables as Markdown (for the README and docs)."""
    parts = []
    for rows in (direct_rows(result), direct_summary_rows(result), conversion_rows(result)):
        if len(rows) < 2:
            continue
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def write_plots(result: BenchResult, out: Path) -> list[str]:
    """PNG plots: accuracy vs T, training time per backend, accuracy vs SOPs. Returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(str(path))

    ok_conv = [r for r in result.conversion if r.status == "ok" and r.points and r.backend == "reference"]
    ok_direct = [r for r in result.direct if r.status == "ok"]
    if ok_conv:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, r in enumerate(ok_conv):
            color = f"C{i % 10}"
            steps = [p.steps for p in r.points]
            ax.plot(steps, [100 * p.snn_accuracy for p in r.points], "o-", color=color,
                    label=f"{r.dataset} {r.ann}{_seed_label(result, r)} p{r.percentile:g} (SNN)")
            ax.axhline(100 * r.ann_accuracy, color=color, ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("time steps T")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("ANN→SNN conversion: accuracy vs T (dashed: the ANN)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "accuracy_vs_T.png")
    if ok_direct:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{r.backend}\n{r.dataset}{_seed_label(result, r)}" for r in ok_direct]
        bars = ax.bar(labels, [r.train_seconds_per_epoch for r in ok_direct], color=[f"C{i}" for i in range(len(ok_direct))])
        ax.scatter(range(len(ok_direct)), [r.epoch_seconds[-1] if r.epoch_seconds else 0 for r in ok_direct],
                   color="black", zorder=3, label="last epoch (after warm-up)")
        ax.legend(fontsize=8)
        for bar, r in zip(bars, ok_direct):
            ax.annotate(f"{100 * r.test_accuracy:.1f}%", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("training time per epoch (s, bar: mean)")
        ax.set_title("direct training: same NIR model and hyper-parameters\n(bar label: test accuracy)", fontsize=10)
        save(fig, "train_time_per_backend.png")
    if ok_conv or ok_direct:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, r in enumerate(ok_conv):
            ax.plot([p.sops + p.macs for p in r.points], [100 * p.snn_accuracy for p in r.points], "o-",
                    color=f"C{i % 10}", label=f"{r.dataset} {r.ann}{_seed_label(result, r)} p{r.percentile:g} (T sweep)")
            ax.scatter([r.ann_macs], [100 * r.ann_accuracy], marker="*", s=120, color=f"C{i % 10}")
        for j, r in enumerate(ok_direct):
            ax.scatter([r.sops_per_sample + r.macs_per_sample], [100 * r.test_accuracy], marker="s", s=50,
                       color=f"C{(len(ok_conv) + j) % 10}", label=f"{r.dataset} direct {r.backend}{_seed_label(result, r)}")
        ax.set_xscale("log")
        ax.set_xlabel("synaptic operations per sample (SOPs + SNN MACs; ★ = ANN MACs)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("accuracy vs operations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "accuracy_vs_sops.png")
    md = out / "bench.md"
    md.write_text(markdown(result) + "\n")
    written.append(str(md))
    return written
