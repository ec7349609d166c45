"""The stored conformance suite is complete, loads, and is exactly what the generator produces."""

import numpy as np
import pytest

import snnx
from snnx.conformance import build, case_names, load_cases

NODE_TYPES = {
    "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
    "Flatten", "Delay", "Threshold", "I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "NIRGraph",
}


def test_at_least_twenty_cases_cover_every_node_type_and_feature():
    cases = load_cases()
    assert len(cases) >= 20
    seen = {type(n).__name__ for c in cases for n in c.graph.nodes.values()}
    assert NODE_TYPES <= seen
    features = {f for c in cases for f in c.features}
    for needed in ("reset:value", "reset:subtract", "v_init", "cycle", "subgraph", "multi-input", "exact-threshold"):
        assert needed in features


def test_regenerating_reproduces_the_stored_cases(tmp_path):
    build.build(tmp_path)
    assert case_names(tmp_path) == case_names()
    for fresh, stored in zip(load_cases(tmp_path), load_cases()):
        for key in stored.expected:
            assert np.array_equal(fresh.expected[key], stored.expected[key]), fresh.name
        for key in stored.inputs:
            assert np.array_equal(fresh.inputs[key], stored.inputs[key]), fresh.name


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c.name)
def test_reference_backend_passes_every_case(case):
    backend = snnx.get_backend("reference")
    out = backend.run(backend.lower(case.graph), case.inputs)
    for key, expected in case.expected.items():
        assert np.array_equal(out[key], expected)
    assert case.graph.metadata["snnx"]["version"] == 2
