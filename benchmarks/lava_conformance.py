#!/usr/bin/env python
"""Every conformance case on a Lava backend: refused (with the reason), spikes equal, or voltage error.

The measurement behind the conformance table of ``specs/backends/lava.md``; "new" marks the 13 cases
added after the original 31 (the table counts the original ones).

    .venv/bin/python benchmarks/lava_conformance.py                 # backend lava (fixed_pt)
    .venv/bin/python benchmarks/lava_conformance.py lava-float li   # one backend, chosen cases
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: Cases added after the original 31 (git history of snnx/conformance/cases).
NEWER_CASES = frozenset({
    "conv_same_even_kernel", "cubali_full", "cubalif_full", "cycle_nearest_entry", "cycle_two_entries",
    "delay_fractional", "i_vinit", "if_vreset_vinit", "li_i_vinit", "lif_leak_vreset_vinit", "skip_connection",
    "sumpool_padded", "threshold_node_exact",
})


def main() -> None:
    from snnx.api import prepare
    from snnx.conformance import case_names, load_case
    from snnx.errors import UnsupportedNodeError
    from snnx.plugins import get_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", nargs="?", default="lava")
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    backend = get_backend(args.backend)
    for name in args.cases or case_names():
        tag = "new " if name in NEWER_CASES else "orig"
        case = load_case(name)
        graph = prepare(case.graph)
        reasons = backend.refusals(graph)
        try:
            if reasons:
                raise UnsupportedNodeError("; ".join(reasons))
            start = time.perf_counter()
            outputs = backend.run(backend.lower(graph), case.inputs)
            seconds = time.perf_counter() - start
        except UnsupportedNodeError as exc:
            print(f"{tag} {name:30s} refused: {exc}")
            continue
        for out, golden in case.expected.items():
            got = outputs[out]
            if np.all((golden == 0) | (golden == 1)):
                differ = int(np.sum(got != golden))
                print(f"{tag} {name:30s} spikes {100 * np.mean(got == golden):.2f}% equal ({differ}/{golden.size} "
                      f"differ; {int(golden.sum())} golden spikes) {seconds:.1f}s")
            else:
                err = float(np.max(np.abs(got - golden)))
                print(f"{tag} {name:30s} voltage max error {err:.3g} (max |v| {np.max(np.abs(golden)):.3g})")


if __name__ == "__main__":
    main()
