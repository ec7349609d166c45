"""Makes ``pytest --pyargs snnx.testing --snnx-backend NAME`` work without ``-p snnx.testing``."""

from snnx.testing import (  # noqa: F401  (pytest finds hooks and fixtures by name)
    conformance_case,
    pytest_addoption,
    pytest_generate_tests,
    snnx_backend,
)
