"""What a benchmark run produced: :class:`BenchResult`, shared by the runner and the report.

It lives apart from :mod:`snnx.bench.runner` so the report can read results without importing the
runner (which writes its plots through :mod:`snnx.bench.report`).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from snnx.bench.conversion import ConversionRow
from snnx.bench.direct import DirectRow


@dataclass
class DirectSummary:
    """One backend on one data set across seeds: mean and sample standard deviation (n - 1).

    Only the seeds whose run finished (status ``ok``) count; the std is ``None`` below two of them.
    """

    dataset: str
    backend: str
    #: Every seed run for this backend; ``n`` of them finished, ``failed`` did not.
    seeds: list[int]
    n: int
    failed: int
    test_accuracy_mean: float | None = None
    test_accuracy_std: float | None = None
    train_seconds_per_epoch_mean: float | None = None
    train_seconds_per_epoch_std: float | None = None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def summarize_direct(rows: list[DirectRow]) -> list[DirectSummary]:
    """One :class:`DirectSummary` per (data set, backend), in the order the rows first name them."""
    groups: dict[tuple[str, str], list[DirectRow]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.backend), []).append(r)
    out = []
    for (dataset, backend), group in groups.items():
        ok = [r for r in group if r.status == "ok"]
        acc = _mean_std([r.test_accuracy for r in ok])
        sec = _mean_std([r.train_seconds_per_epoch for r in ok])
        out.append(DirectSummary(dataset, backend, [r.seed for r in group], len(ok), len(group) - len(ok), *acc, *sec))
    return out


@dataclass
class BenchResult:
    """What a run produced."""

    config: dict
    environment: dict
    direct: list[DirectRow] = field(default_factory=list)
    conversion: list[ConversionRow] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        """The seeds the rows were run with, in first-seen order."""
        return list(dict.fromkeys(r.seed for r in [*self.direct, *self.conversion]))

    def direct_summary(self) -> list[DirectSummary]:
        """Mean ± sample std across seeds per (data set, backend) (see :func:`summarize_direct`)."""
        return summarize_direct(self.direct)

    def to_dict(self) -> dict:
        """The result as JSON-ready dicts and lists (plus ``direct_summary`` with several seeds)."""
        out = {
            "config": self.config,
            "environment": self.environment,
            "seconds": self.seconds,
            "direct": [asdict(r) for r in self.direct],
            "conversion": [asdict(r) for r in self.conversion],
            "files": self.files,
        }
        if len(self.seeds) > 1:
            out["direct_summary"] = [asdict(s) for s in self.direct_summary()]
        return out


__all__ = ["BenchResult", "DirectSummary", "summarize_direct"]
