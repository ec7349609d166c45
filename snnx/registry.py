"""Registries that plugins fill through the hooks in :mod:`snnx.hookspecs`.

A registrar records which plugin made each registration, so an error can say
``backend 'norse' (from plugin 'snnx.plugins.norse.plugin')`` instead of just a name.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from snnx.errors import PluginError, SnnxError
from snnx.ir.capabilities import ALL_NODE_TYPES, Capabilities, graph_refusals

if TYPE_CHECKING:  # pragma: no cover
    import nir

    from snnx.ir.prepare import PreparedGraph

__all__ = ["ALL_NODE_TYPES", "Backend", "BackendRegistrar", "Capabilities", "OnnxOpRegistrar", "OpEntry"]


def _findable(module: str) -> bool:
    """Whether ``module`` could be imported, without importing it (a missing parent counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):
        return False


class Backend:
    """Base class of an execution backend. Subclass it and register an instance.

    Subclasses set :attr:`name`, :attr:`capabilities`, :attr:`requires` and implement :meth:`lower` and
    :meth:`run`; :meth:`raise_` and :meth:`save` are optional. Import the framework inside the methods,
    not at module level, so ``snnx --help`` works without it.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities(node_types=frozenset())
    #: Importable top-level modules the backend needs; a missing one makes the backend unavailable.
    requires: ClassVar[tuple[str, ...]] = ()
    #: How to install what :attr:`requires` names, shown when it is missing. A third-party backend sets
    #: it (the default, ``pip install 'snnx[NAME]'``, only fits built-ins).
    install_hint: ClassVar[str] = ""
    #: True only for a backend that approximates the contract by design and reports how (fixed-point
    #: hardware): ``snnx check`` then shows its agreement as measured instead of failing.
    approximate: ClassVar[bool] = False
    #: File suffix used by ``snnx lower -o`` when the user gives none.
    file_suffix: ClassVar[str] = ".pt"
    #: Device kinds (``"cpu"``, ``"cuda"``, ``"mps"``) the lowered model runs on; ``--device`` with any
    #: other kind is refused with one line (see :mod:`snnx.device`). A torch backend whose model moves
    #: with ``.to(device)`` and whose :meth:`run` follows the model's device lists them all.
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    #: Set by the registrar: the plugin that registered this backend.
    plugin: str = "?"

    # -- capability check -------------------------------------------------------------------------
    def missing_requirements(self) -> list[str]:
        """Names from :attr:`requires` that cannot be imported here."""
        return [mod for mod in self.requires if not _findable(mod)]

    def refusals(self, graph: PreparedGraph) -> list[str]:
        """Reasons this backend cannot run the prepared ``graph`` exactly; empty when it can.

        The default checks requirements, node types, reset modes, cycles and ``v_init`` against
        :attr:`capabilities`. Override to add backend-specific checks (call ``super()`` first).
        """
        missing = self.missing_requirements()
        if missing:
            hint = self.install_hint or f"pip install 'snnx[{self.name}]'"
            return [f"not installed: {', '.join(missing)} ({hint})"]
        return graph_refusals(graph, self.capabilities)

    def check_accepts(self, graph: PreparedGraph) -> None:
        """Raise :class:`UnsupportedNodeError` naming every reason the graph is refused."""
        from snnx.errors import UnsupportedNodeError

        reasons = self.refusals(graph)
        if reasons:
            msg = f"Backend {self.name!r} cannot take this graph: " + "; ".join(reasons)
            raise UnsupportedNodeError(msg)

    # -- the work ---------------------------------------------------------------------------------
    def lower(self, graph: PreparedGraph, **options: Any) -> Any:
        """Build the native model for a prepared graph (:func:`snnx.ir.prepare.prepare`: validated,
        flat, scheduled, with its time step ``graph.dt``) that :meth:`refusals` accepted."""
        raise NotImplementedError

    def run(self, model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a lowered model on time-major inputs ``{input_name: (T, batch, *shape)}``.

        Returns ``{output_name: (T, batch, *shape)}`` as numpy arrays; state starts fresh.
        """
        raise NotImplementedError

    def raise_(self, model: Any) -> nir.NIRGraph:
        """Export a lowered (possibly trained) model back to a NIR graph."""
        msg = f"Backend {self.name!r} cannot export models back to NIR"
        raise SnnxError(msg)

    def save(self, model: Any, path: str) -> None:
        """Write a lowered model to ``path`` (atomically)."""
        msg = f"Backend {self.name!r} cannot write lowered models to a file"
        raise SnnxError(msg)

    def load(self, path: str) -> Any:
        """Read a model written by :meth:`save` (used by ``snnx raise`` and ``snnx run``)."""
        msg = f"Backend {self.name!r} cannot read lowered models from a file"
        raise SnnxError(msg)

    def describe(self, model: Any) -> str:
        """A short human summary of a lowered model (printed by ``snnx lower``)."""
        return repr(model)

    def __repr__(self) -> str:
        return f"<Backend {self.name!r} from {self.plugin!r}>"


@dataclass
class BackendRegistrar:
    """The ``register`` callback handed to ``snnx_register_backends``."""

    backends: dict[str, Backend] = field(default_factory=dict)
    current_plugin: str = "?"

    def __call__(self, backend: Backend) -> None:
        if not isinstance(backend, Backend):
            msg = f"plugin {self.current_plugin!r} registered {backend!r}, which is not a snnx.Backend"
            raise PluginError(msg)
        if not backend.name:
            msg = f"plugin {self.current_plugin!r} registered a backend without a name"
            raise PluginError(msg)
        if backend.name in self.backends:
            other = self.backends[backend.name].plugin
            msg = (
                f"plugin {self.current_plugin!r} registered backend {backend.name!r}, "
                f"a name already taken by plugin {other!r}; rename one of them"
            )
            raise PluginError(msg)
        backend.plugin = self.current_plugin
        _guard(backend)
        self.backends[backend.name] = backend


#: Backend methods whose unexpected exceptions are reported as the plugin's fault (see :func:`_guard`).
GUARDED_METHODS = ("refusals", "lower", "run", "raise_", "save", "load", "describe")
#: Methods that take a graph: a plain ``nir.NIRGraph`` is prepared before the backend sees it, so every
#: backend receives a :class:`~snnx.ir.prepare.PreparedGraph` however it is called.
GRAPH_METHODS = frozenset({"refusals", "lower"})


def _prepared(args: tuple[Any, ...]) -> tuple[Any, ...]:
    from snnx.ir.prepare import PreparedGraph, prepare

    if args and not isinstance(args[0], PreparedGraph):
        import nir

        if isinstance(args[0], nir.NIRGraph):
            return (prepare(args[0]), *args[1:])
    return args


def _guard(backend: Backend) -> None:
    """Make a bug inside a backend method a :class:`PluginError` that names the backend and its plugin.

    Without it a crash in a third-party ``lower`` reaches the user as an anonymous "internal error" of
    snnx. :class:`SnnxError` passes through unchanged (the backend's own message); the original exception
    stays chained (``--debug`` shows its traceback).
    """
    for method_name in GUARDED_METHODS:
        method = getattr(backend, method_name)

        def guarded(*args: Any, __method: Callable[..., Any] = method, __name: str = method_name, **kwargs: Any) -> Any:
            if __name in GRAPH_METHODS:
                args = _prepared(args)  # outside the try: an invalid graph is the caller's error
            try:
                if __name == "refusals":  # a check: a fold overflowing on absurd parameters must not warn
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        return __method(*args, **kwargs)
                return __method(*args, **kwargs)
            except SnnxError:
                raise
            except Exception as exc:
                msg = (
                    f"backend {backend.name!r} (from plugin {backend.plugin!r}) crashed in {__name}: "
                    f"{type(exc).__name__}: {exc}. This is a bug in that plugin: report it to its authors; "
                    f"set SNNX_DISABLE_PLUGINS={backend.plugin} to run without it"
                )
                raise PluginError(msg) from exc

        guarded.__doc__ = method.__doc__
        guarded.__wrapped__ = method  # type: ignore[attr-defined]
        setattr(backend, method_name, guarded)


OpHandler = Callable[..., Any]


@dataclass(frozen=True)
class OpEntry:
    """One registered ONNX op handler."""

    domain: str
    op_type: str
    since: int
    handler: OpHandler
    plugin: str


@dataclass
class OnnxOpRegistrar:
    """The ``register`` callback handed to ``snnx_register_onnx_ops``."""

    entries: dict[tuple[str, str, int], OpEntry] = field(default_factory=dict)
    current_plugin: str = "?"

    def __call__(self, op_type: str, handler: OpHandler, since: int = 1, domain: str = "") -> None:
        key = (domain, op_type, int(since))
        if key in self.entries:
            other = self.entries[key].plugin
            msg = (
                f"plugin {self.current_plugin!r} registered ONNX op {op_type!r} (since opset {since}), "
                f"already handled by plugin {other!r}"
            )
            raise PluginError(msg)
        self.entries[key] = OpEntry(domain, op_type, int(since), handler, self.current_plugin)

    def lookup(self, op_type: str, opset: int, domain: str = "") -> OpEntry | None:
        """The handler with the highest ``since`` that is <= ``opset``, or None."""
        best: OpEntry | None = None
        for (dom, op, since), entry in self.entries.items():
            if dom == domain and op == op_type and since <= opset and (best is None or since > best.since):
                best = entry
        return best

    def op_types(self, domain: str = "") -> list[str]:
        """The op types with a handler in ``domain``, sorted (for "supported ops" messages)."""
        return sorted({op for (dom, op, _s) in self.entries if dom == domain})
