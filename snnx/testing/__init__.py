"""The snnx conformance kit: a pytest plugin that runs ``specs/conformance`` against a backend.

Run it against any installed backend (built-in or from a third-party plugin)::

    pytest -p snnx.testing --pyargs snnx.testing --snnx-backend mybackend

(``-p snnx.testing`` can be left out where snnx declares the ``pytest11`` entry point
``snnx.testing = snnx.testing``: pytest must know ``--snnx-backend`` before it finds the package), or load it from a plugin package's ``conftest.py`` and use its fixtures in your own tests::

    pytest_plugins = ["snnx.testing"]

    def test_my_backend_conforms(snnx_backend, conformance_case):   # parametrised for you
        snnx.testing.check_case(snnx_backend, conformance_case)

``--snnx-backend NAME`` (repeatable) chooses the backends; without it every registered backend except
``reference`` is used. A case the backend refuses (through its capabilities / ``refusals``, or by raising
:class:`snnx.errors.UnsupportedNodeError` from ``lower``/``run``) is reported as a skip whose reason is
the backend's own; a case it accepts must match the golden traces by the rule
of ``specs/semantics.md`` §8 (spikes exactly, other outputs within ``1e-5`` relative; NaN/inf is a
disagreement, and a run in which nothing fired fails as "vacuous" instead of passing).

To check that the suite would catch a wrong fold in your backend, point the mutation harness at it:
``snnx.conformance.mutants.evaluate(my_mutants, run=snnx.conformance.mutants.backend_runner(NAME))``
(``specs/plugins.md`` §8).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from snnx.conformance import Case

__all__ = [
    "check_case",
    "check_raise_roundtrip",
    "conformance_case",
    "pytest_addoption",
    "pytest_generate_tests",
    "selected_backends",
    "snnx_backend",
]

OPTION = "--snnx-backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--snnx-backend NAME`` (repeatable)."""
    try:
        parser.getgroup("snnx").addoption(
            OPTION,
            action="append",
            default=[],
            metavar="NAME",
            help="backend to run the snnx conformance suite against (repeatable; default: all but 'reference')",
        )
    except ValueError:  # loaded both as pytest_plugins and as this package's conftest
        pass


def selected_backends(config: pytest.Config) -> list[str]:
    """The backend names chosen with ``--snnx-backend``, else every registered one but ``reference``."""
    names = list(config.getoption(OPTION, default=None) or [])
    if names:
        return names
    from snnx.plugins import get_backends

    return sorted(n for n in get_backends() if n != "reference")


def _check_names(names: list[str]) -> None:
    from snnx.errors import UnknownBackendError
    from snnx.plugins import get_backend

    for name in names:
        try:
            get_backend(name)
        except UnknownBackendError as exc:
            raise pytest.UsageError(f"{OPTION} {name}: {exc}") from exc


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``snnx_backend`` over the selected backends and ``conformance_case`` over the cases."""
    definition = metafunc.definition
    if getattr(definition, "_snnx_parametrized", False):  # the hook may be registered twice
        return
    if "snnx_backend" in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        _check_names(names)
        metafunc.parametrize("snnx_backend", names, ids=names, indirect=True)
    if "conformance_case" in metafunc.fixturenames:
        from snnx.conformance import case_names

        cases = case_names()
        metafunc.parametrize("conformance_case", cases, ids=cases, indirect=True)
    definition._snnx_parametrized = True


@pytest.fixture
def snnx_backend(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test (``--snnx-backend``); unknown names fail with the known ones."""
    from snnx.plugins import get_backend

    name = getattr(request, "param", None)
    if name is None:
        names = selected_backends(request.config)
        if len(names) != 1:
            pytest.fail(f"use {OPTION} NAME to choose one backend (registered: {', '.join(names)})")
        name = names[0]
    get_backend(name)  # raises UnknownBackendError naming the registered backends
    return name


@pytest.fixture
def conformance_case(request: pytest.FixtureRequest) -> Case:
    """One case of ``specs/conformance`` (graph, inputs, golden outputs, features)."""
    from snnx.conformance import load_case

    return load_case(request.param)


def _lower_or_skip(backend_name: str, case: Case) -> tuple[Any, Any]:
    from snnx.api import prepare
    from snnx.plugins import get_backend

    backend = get_backend(backend_name)
    flat = prepare(case.graph)
    reasons = backend.refusals(flat)
    if reasons:
        pytest.skip(f"{backend_name} refuses {case.name}: {'; '.join(reasons)}")
    with _refusal_as_skip(backend_name, case):
        return backend, backend.lower(flat)


@contextlib.contextmanager
def _refusal_as_skip(backend_name: str, case: Case) -> Iterator[None]:
    """An ``UnsupportedNodeError`` is the backend refusing (e.g. a limit that depends on the input
    data, which ``refusals(graph)`` cannot see); it skips with the backend's message. Any other
    exception is a failure."""
    from snnx.errors import UnsupportedNodeError

    try:
        yield
    except UnsupportedNodeError as exc:
        pytest.skip(f"{backend_name} refuses {case.name}: {exc}")


def _record(case: Case) -> dict:
    from snnx.ir.reference import simulate

    return simulate(case.graph, case.inputs, record=True)


def check_case(backend_name: str, case: Case | str) -> None:
    """Lower ``case`` with the backend, run it, and fail unless it matches the golden traces.

    Refused cases skip with the backend's reason.
    """
    from snnx.api import compare
    from snnx.conformance import load_case

    if isinstance(case, str):
        case = load_case(case)
    backend, model = _lower_or_skip(backend_name, case)
    with _refusal_as_skip(backend_name, case):
        outputs = backend.run(model, case.inputs)
    # record: a case in which nothing fires is reported as "vacuous", never as a pass; NaN/inf in an
    # output is a disagreement (snnx.api.compare).
    agreement = compare(case.graph, case.expected, outputs, backend_name, record=_record(case))
    if agreement.status == "disagree" and backend.approximate:
        # Declared approximation (fixed-point hardware): it must run and give the right shapes, and
        # its agreement is reported rather than asserted.
        # The measurement goes into the xfail reason: spikes that differ, or a voltage's largest error.
        measured = f"{agreement.spike_mismatches} spike(s) differ"
        errors = [v["max_abs_error"] for v in agreement.per_output.values() if "max_abs_error" in v]
        if errors:
            measured += f", max |error| {max(errors):.2e} on non-spiking outputs"
        pytest.xfail(f"{backend_name} approximates by design: {measured}")
    if agreement.status != "agree":
        details = ", ".join(f"{out}: {vals}" for out, vals in agreement.per_output.items())
        pytest.fail(
            f"backend {backend_name!r} disagrees with the reference on case {case.name!r} "
            f"({case.description}): {agreement.status} {agreement.detail} {details}".strip()
        )


def check_raise_roundtrip(backend_name: str, case: Case | str) -> None:
    """For a backend that can raise: ``simulate(raise_(lower(graph)))`` must give the golden traces.

    Skips when the backend refuses the case or cannot export back to NIR.
    """
    from snnx.api import compare
    from snnx.conformance import load_case
    from snnx.ir.reference import simulate
    from snnx.registry import Backend

    if isinstance(case, str):
        case = load_case(case)
    backend, model = _lower_or_skip(backend_name, case)
    if type(backend).raise_ is Backend.raise_:
        pytest.skip(f"backend {backend_name!r} does not export back to NIR (no raise_)")
    raised = backend.raise_(model)
    agreement = compare(case.graph, case.expected, simulate(raised, case.inputs), backend_name, record=_record(case))
    if agreement.status != "agree":
        pytest.fail(
            f"raise_(lower({case.name!r})) on backend {backend_name!r} does not simulate like the original: "
            f"{agreement.status} {agreement.per_output}"
        )
