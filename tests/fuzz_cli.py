"""Run the CLI in-process on damaged files and collect every internal error or traceback.

``python tests/fuzz_cli.py N`` prints the failures for N files; ``tests/test_fuzz.py`` asserts none.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_files import mutate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "snnx" / "conformance" / "cases").glob("*.nir")) + sorted((ROOT / "tests" / "data" / "nir-samples").glob("*.nir"))
COMMANDS = [
    ["info"],
    ["run", "--random", "3", "--batch", "2"],
    ["check"],
    ["check", "--backends", "reference", "--random", "3", "--batch", "1"],
    ["lower", "--to", "reference", "-o", "{out}"],
    ["stats", "--random", "3"],
]


def invoke(args: list[str]) -> tuple[int, str, str, list[str]]:
    """``snnx.cli.main(args)`` with stdout/stderr captured and Python warnings recorded."""
    from snnx.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(args)
        except SystemExit as exc:  # pragma: no cover - main returns codes itself
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - escaping main is a failure to report
            code, err = -1, io.StringIO(f"escaped main: {type(exc).__name__}: {exc}")
    noisy = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))]
    return code, out.getvalue(), err.getvalue(), noisy


def fuzz(count: int, workdir: Path, seed: int = 13) -> tuple[list[str], dict[int, int]]:
    """Damage ``count`` files and run every command on each; returns (failures, exit-code histogram)."""
    rng = np.random.default_rng(seed)
    failures: list[str] = []
    codes: dict[int, int] = {}
    for k in range(count):
        source = SEEDS[k % len(SEEDS)]
        target = workdir / f"fuzz{k:04d}.nir"
        what = mutate(source, target, rng)
        for command in COMMANDS:
            args = [a.replace("{out}", str(workdir / "lowered.nir")) for a in command]
            code, out, err, noisy = invoke([args[0], str(target), *args[1:]])
            codes[code] = codes.get(code, 0) + 1
            problem = None
            if code not in (0, 1, 2) or "internal error" in err or "Traceback" in out + err:
                problem = err.strip().splitlines()[-1:] or [f"exit {code}"]
            elif code == 2 and len(err.strip().splitlines()) != 1:
                problem = [f"{len(err.strip().splitlines())} lines on stderr: {err.strip()[:200]}"]
            elif code == 1 and args[0] != "check":
                problem = [f"exit 1: {err.strip()[:200]}"]
            elif noisy:
                problem = noisy[:1]
            if problem:
                failures.append(f"{source.name} [{what}] snnx {' '.join(args)}: {problem[0]}")
    return failures, codes


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as tmp:
        fails, hist = fuzz(n, Path(tmp))
    print("\n".join(fails))
    print(f"{n} files x {len(COMMANDS)} commands: {len(fails)} failures; exit codes {hist}")
