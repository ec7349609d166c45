"""The snnx conformance suite (``snnx.testing``) on the ``sinabs`` backend.

``conformance_case`` is parametrised by the kit over every case of ``specs/conformance``.
"""

from __future__ import annotations

import snnx
from snnx.api import prepare
from snnx.conformance import load_cases
from snnx.testing import check_case, check_raise_roundtrip

#: Conformance cases this backend declares it cannot run (and says why); every other case must pass.
#: Sinabs' synaptic LIF has no constant drive into v_mem, so a non-zero v_leak (CubaLI) or v_leak - v_reset
#: (CubaLIF) cannot be folded: the cases that make v_leak observable for Cuba neurons are refused.
#: Signed spikes (contract v2) are refused by the capability check: Sinabs' spike functions emit no -1.
REFUSED: frozenset[str] = frozenset({
    "cubali_full", "cubalif_full", "if_signed", "lif_signed", "cubalif_signed", "mlp_signed",
})


def test_case_matches_reference(conformance_case):
    check_case("sinabs", conformance_case)


def test_raised_graph_matches_reference(conformance_case):
    check_raise_roundtrip("sinabs", conformance_case)


def test_declared_cases_are_exactly_the_accepted_ones():
    """A refusal that creeps in would turn a failing case into a skip; pin the declared set."""
    backend = snnx.get_backend("sinabs")
    refused = {case.name for case in load_cases() if backend.refusals(prepare(case.graph))}
    assert refused == REFUSED
