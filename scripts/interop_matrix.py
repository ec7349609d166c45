"""The numbers behind the README's interop tables (T=50, batch 4, Bernoulli input).

``python scripts/interop_matrix.py [framework ...]``: export every conformance case for each framework and
run it in that framework's own importer: spike agreement, or snnx's refusal.
``python scripts/interop_matrix.py --import``: each framework's own models (tests/interop), exported with
its own exporter, imported with the profile and with auto-detection, simulated by snnx.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "interop"))

import snnx  # noqa: E402
from snnx.conformance import CASES_DIR, case_names  # noqa: E402
from snnx.interop import InteropError, export_graph  # noqa: E402


def main(frameworks: list[str]) -> None:
    from interop_models import bernoulli, run_imported

    for case in case_names():
        graph = snnx.load(CASES_DIR / f"{case}.nir")
        inputs = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
        for fw in frameworks:
            try:
                result = export_graph(graph, fw)
            except InteropError as exc:
                print(f"{case:32s} {fw:13s} refused: {exc}")
                continue
            if len(inputs) != 1:
                print(f"{case:32s} {fw:13s} exported (several inputs: not run here)")
                continue
            shape = tuple(np.asarray(graph.nodes[inputs[0]].input_type["input"]).tolist())
            x = bernoulli(shape, seed=1)
            ref = snnx.simulate(graph, x.astype(np.float64))
            expected = next(iter(ref.values()))
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    import nir

                    tmp = Path("/tmp") / f"interop_matrix_{case}_{fw}.nir"
                    snnx.save(result.graph, tmp)
                    got = run_imported(fw, nir.read(tmp), x).reshape(expected.shape)
            except Exception as exc:  # the importer itself failed: a defect to report
                print(f"{case:32s} {fw:13s} IMPORTER FAILED: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            spiking = set(np.unique(expected)) <= {0.0, 1.0}
            agree = np.mean(got == expected) if spiking else np.mean(np.abs(got - expected) <= 1e-5 * np.maximum(1, np.abs(expected)))
            what = f"{int(expected.sum())} spikes" if spiking else "analog output"
            print(f"{case:32s} {fw:13s} agreement {agree:7.2%}  ({what})")


def import_table() -> None:
    import interop_models
    from test_interop_import import MODELS

    from snnx.interop import guess, import_graph

    for fw, kinds in MODELS.items():
        if importlib.util.find_spec(fw) is None:
            print(f"{fw:13s} not installed")
            continue
        for kind in kinds:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                graph, forward, shape = getattr(interop_models, f"{fw}_model")(kind)
                x = interop_models.bernoulli(shape)
                expected = forward(x)
            detected = guess(graph)
            row = [f"{fw:13s} {kind:15s}"]
            for source in (fw, "auto"):
                result = import_graph(graph, source)
                got = next(iter(snnx.simulate(result.graph, x.astype(np.float64)).values())).reshape(expected.shape)
                row.append(f"--from {source}: {np.mean(got == expected):7.2%}")
            row.append(f"auto = {detected.profile if detected else None} ({detected.confidence:.0%})" if detected else "")
            print("  ".join(row) + f"  ({int(expected.sum())} spikes of {expected.size})")


if __name__ == "__main__":
    if sys.argv[1:] == ["--import"]:
        import_table()
        sys.exit(0)
    names = sys.argv[1:] or [f for f in ("snntorch", "norse", "spikingjelly", "sinabs") if importlib.util.find_spec(f)]
    main(names)
