"""The conformance kit (:mod:`snnx.testing`) run for every built-in backend, as plugin authors run it."""

import pytest

from snnx.conformance import case_names
from snnx.plugins import BUILTIN_PLUGINS, get_backends
from snnx.testing import check_case, check_raise_roundtrip

pytest_plugins = ["pytester"]

BUILTIN_BACKENDS = sorted(
    name for name, b in get_backends().items() if b.plugin in BUILTIN_PLUGINS and name != "reference"
)


def test_the_builtin_torch_backends_are_all_run():
    assert {"snntorch", "norse", "spikingjelly"} <= set(BUILTIN_BACKENDS)


@pytest.mark.parametrize("case", case_names())
@pytest.mark.parametrize("backend", BUILTIN_BACKENDS)
def test_builtin_backend_conforms(backend, case):
    check_case(backend, case)


@pytest.mark.parametrize("case", case_names())
@pytest.mark.parametrize("backend", BUILTIN_BACKENDS)
def test_builtin_backend_raises_back_exactly(backend, case):
    check_raise_roundtrip(backend, case)


def test_kit_runs_as_pytest_plugin_and_reports_refusals_as_skips(pytester):
    """``pytest -p snnx.testing --pyargs snnx.testing --snnx-backend NAME`` with a backend that refuses LIF."""
    pytester.makeconftest(
        '''
import snnx
from snnx.plugins import load_plugins
from snnx.plugins.reference import ReferenceBackend, ALL_NODE_TYPES
from snnx.registry import Capabilities

class NoLif(ReferenceBackend):
    name = "nolif"
    capabilities = Capabilities(node_types=ALL_NODE_TYPES - {"LIF"}, cycles=True)

load_plugins().backends["nolif"] = NoLif()
pytest_plugins = ["snnx.testing"]
'''
    )
    args = ("--pyargs", "snnx.testing", "--snnx-backend", "nolif", "-k", "if_value", "-rs", "-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(*args)
    outcomes = result.parseoutcomes()
    # -k selects if_value, cubalif_value (run, pass) and lif_value (refused: skipped with the reason)
    assert (outcomes["passed"], outcomes["skipped"], outcomes.get("failed", 0)) == (4, 2, 0), outcomes
    result.stdout.fnmatch_lines(["*nolif refuses lif_value: node type LIF is not supported*"])


def test_kit_rejects_an_unknown_backend_name(pytester):
    pytester.makeconftest('pytest_plugins = ["snnx.testing"]')
    result = pytester.runpytest_subprocess("--pyargs", "snnx.testing", "--snnx-backend", "no-such-backend")
    assert result.ret != 0
    output = "\n".join(result.outlines + result.errlines)
    assert "no backend named 'no-such-backend'" in output


def test_kit_skips_data_dependent_refusals_and_fails_other_errors(pytester):
    pytester.makeconftest(
        '''
from snnx.errors import UnsupportedNodeError
from snnx.plugins import load_plugins
from snnx.plugins.reference import ReferenceBackend

class AnalogShy(ReferenceBackend):
    name = "analogshy"
    def run(self, model, inputs):
        raise UnsupportedNodeError("input must be binary spikes")

class Broken(ReferenceBackend):
    name = "broken"
    def run(self, model, inputs):
        raise RuntimeError("boom")

load_plugins().backends.update(analogshy=AnalogShy(), broken=Broken())
pytest_plugins = ["snnx.testing"]
'''
    )
    base = ("--pyargs", "snnx.testing", "-k", "test_case_matches_reference and lif_value", "-rs", "-p", "no:cacheprovider")
    shy = pytester.runpytest_subprocess(*base, "--snnx-backend", "analogshy")
    # "lif_value" selects lif_value and cubalif_value; the kit has two tests per case.
    assert shy.parseoutcomes() == {"skipped": 2, "deselected": 2 * len(case_names()) - 2}
    shy.stdout.fnmatch_lines(["*analogshy refuses *lif_value: input must be binary spikes*"])
    broken = pytester.runpytest_subprocess(*base, "--snnx-backend", "broken")
    assert broken.parseoutcomes()["failed"] == 2
