"""What a benchmark run produced: :class:`BenchResult`, shared by the runner and the report.

It lives apart from :mod:`snnx.bench.runner` so the report can read results without importing the
runner (which writes its plots through :mod:`snnx.bench.report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from snnx.bench.conversion import ConversionRow
from snnx.bench.direct import DirectRow


@dataclass
class BenchResult:
    """What a run produced."""

    config: dict
    environment: dict
    direct: list[DirectRow] = field(default_factory=list)
    conversion: list[ConversionRow] = field(default_factory=list)
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The result as JSON-ready dicts and lists."""
        return {
            "config": self.config,
            "environment": self.environment,
            "seconds": self.seconds,
            "direct": [asdict(r) for r in self.direct],
            "conversion": [asdict(r) for r in self.conversion],
            "files": self.files,
        }


__all__ = ["BenchResult"]
