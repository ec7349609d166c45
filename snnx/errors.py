"""The exceptions snnx raises for anything a user can fix.

Every user-facing failure is an :class:`SnnxError`; the CLI prints its message on one line and exits
with code 2. Messages name the thing (node, file, plugin) and say what to do next.
"""

from __future__ import annotations


class SnnxError(Exception):
    """Root of every error snnx reports to a user."""


class NirFileError(SnnxError):
    """A ``.nir`` (or ``.npz``/``.onnx``) file cannot be read or written."""


class ValidationError(SnnxError):
    """A graph is structurally wrong: a dangling edge, a bad shape, a NaN parameter, ..."""

    def __init__(self, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class UnsupportedNodeError(SnnxError):
    """A backend or the converter cannot take a node (or an ONNX op)."""


class UnknownBackendError(SnnxError):
    """No registered backend has the requested name."""


class PluginError(SnnxError):
    """A plugin failed to import or to register, or registered something invalid."""


class ConversionError(SnnxError):
    """ONNX → NIR conversion failed for a reason the user can fix."""
