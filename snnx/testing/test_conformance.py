"""The conformance suite as tests: every case of ``specs/conformance`` on the selected backend(s)."""

from snnx.testing import check_case, check_raise_roundtrip


def test_case_matches_reference(snnx_backend, conformance_case):
    check_case(snnx_backend, conformance_case)


def test_raised_graph_matches_reference(snnx_backend, conformance_case):
    check_raise_roundtrip(snnx_backend, conformance_case)
