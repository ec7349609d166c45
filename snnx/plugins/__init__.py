"""The plugin manager: built-in plugins plus the ``snnx`` entry-point group.

A plugin that fails to import, or raises while registering, is recorded with its error and skipped;
everything else keeps working, and ``snnx plugins`` shows what went wrong.

Environment variables:

- ``SNNX_DISABLE_PLUGINS``: comma-separated plugin names not to load; ``*`` disables all external
  (entry-point) plugins. Use it when a broken plugin gets in the way.
- ``SNNX_TRACE_PLUGINS=1``: re-raise plugin errors with their traceback (for plugin authors).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from snnx import hookspecs
from snnx.errors import PluginError, UnknownBackendError
from snnx.registry import Backend, BackendRegistrar, OnnxOpRegistrar

ENTRY_POINT_GROUP = "snnx"

#: Built-in plugin modules, loaded like any third-party plugin.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "snnx.plugins.reference",
    "snnx.plugins.snntorch.plugin",
    "snnx.plugins.norse.plugin",
    "snnx.plugins.spikingjelly.plugin",
    "snnx.plugins.loihi.plugin",
    "snnx.convert.plugin",
    "snnx.bench.plugin",
    "snnx.interop.plugin",
)


@dataclass
class PluginInfo:
    """What ``snnx plugins`` reports about one plugin."""

    name: str
    source: str  # "builtin" or "entry point <dist> <version>"
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    backends: list[str] = field(default_factory=list)
    onnx_ops: list[str] = field(default_factory=list)


@dataclass
class PluginState:
    """The loaded plugin manager and everything the plugins registered."""

    pm: pluggy.PluginManager
    plugins: dict[str, PluginInfo]
    backends: dict[str, Backend]
    onnx_ops: OnnxOpRegistrar
    interop: dict[str, Any] = field(default_factory=dict)  # name -> snnx.interop.Profile


_STATE: PluginState | None = None


def _disabled() -> set[str]:
    raw = os.environ.get("SNNX_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _trace() -> bool:
    return os.environ.get("SNNX_TRACE_PLUGINS", "") not in ("", "0")


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _load_builtin(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], disabled: set[str]) -> None:
    for module_name in BUILTIN_PLUGINS:
        if module_name in disabled:
            continue
        info = PluginInfo(name=module_name, source="builtin")
        infos[module_name] = info
        try:
            module = importlib.import_module(module_name)
            pm.register(module, name=module_name)
        except Exception as exc:  # a built-in must not take the CLI down either
            if _trace():
                raise
            info.error = _describe_error(exc)


def _load_entry_points(pm: pluggy.PluginManager, infos: dict[str, PluginInfo], disabled: set[str]) -> None:
    if "*" in disabled:
        return
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled:
            continue
        dist = getattr(ep, "dist", None)
        source = f"entry point {ep.value}"
        if dist is not None:
            source += f" ({dist.name} {dist.version})"
        info = PluginInfo(name=ep.name, source=source)
        if ep.name in infos:
            info.error = f"a plugin named {ep.name!r} is already loaded ({infos[ep.name].source}); rename it"
            infos[f"{ep.name} ({source})"] = info
            continue
        infos[ep.name] = info
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            if _trace():
                raise
            info.error = (
                f"error loading snnx plugin {ep.name!r} ({ep.value}): {_describe_error(exc)}; "
                f"set SNNX_DISABLE_PLUGINS={ep.name} to skip it"
            )


def _check_unknown_hooks(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> None:
    """Mark every plugin that implements a hook with no spec (a misspelt name) as failed, naming the hook.

    This is pluggy's ``check_pending`` done per plugin, so one typo does not hide the others and the
    message names the plugin rather than its module object. A failed plugin's hooks are never called.
    """
    known = ", ".join(sorted(n for n in vars(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_")))
    for name, plugin in pm.list_name_plugin():
        unknown = sorted(h.name for h in pm.get_hookcallers(plugin) or [] if h.spec is None)
        if unknown and name in infos and not infos[name].error:
            infos[name].error = (
                f"plugin {name!r} implements unknown hook(s) {', '.join(unknown)}; "
                f"the snnx hooks are {known} (see specs/plugins.md)"
            )


def call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    infos: dict[str, PluginInfo],
    registrar: Any,
) -> None:
    """Call one registration hook's implementations one at a time, so one failing plugin cannot stop
    the others; each gets ``register=registrar``, told which plugin is registering."""
    hook = getattr(pm.hook, hook_name)
    # get_hookimpls() is in registration order (pluggy *calls* them in reverse): built-ins come first,
    # so a third-party plugin can never take a built-in backend's name.
    for impl in hook.get_hookimpls():
        info = infos.get(impl.plugin_name)
        if info is not None and info.error:
            continue
        registrar.current_plugin = impl.plugin_name
        try:
            impl.function(register=registrar)
        except Exception as exc:
            if _trace():
                raise
            if info is not None:
                info.error = f"plugin {impl.plugin_name!r} failed in {hook_name}: {_describe_error(exc)}"


def load_plugins(*, reload: bool = False) -> PluginState:
    """Load built-in and entry-point plugins once and collect their registrations."""
    global _STATE
    if _STATE is not None and not reload:
        return _STATE
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    disabled = _disabled()
    _load_builtin(pm, infos, disabled)
    _load_entry_points(pm, infos, disabled)
    for name, plugin in pm.list_name_plugin():
        if name in infos:
            infos[name].hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    _check_unknown_hooks(pm, infos)

    backends = BackendRegistrar()
    call_each(pm, "snnx_register_backends", infos, backends)
    ops = OnnxOpRegistrar()
    call_each(pm, "snnx_register_onnx_ops", infos, ops)
    for backend in backends.backends.values():
        if backend.plugin in infos:
            infos[backend.plugin].backends.append(backend.name)
    for entry in ops.entries.values():
        if entry.plugin in infos:
            infos[entry.plugin].onnx_ops.append(entry.op_type)
    from snnx.interop.base import InteropRegistrar

    interop = InteropRegistrar()
    call_each(pm, "snnx_register_interop", infos, interop)
    _STATE = PluginState(pm=pm, plugins=infos, backends=backends.backends, onnx_ops=ops, interop=interop.profiles)
    return _STATE


def register_commands(cli: Any) -> None:
    """Let every plugin add its CLI commands (``snnx_register_commands``), isolating failures.

    A plugin may add commands but not replace one it did not add (a core command or another plugin's):
    the replacement is undone and the plugin reported, so no plugin can change what ``snnx run`` does.
    """
    state = load_plugins()
    # Who added each command, kept on the group so that calling this twice (tests call main() often)
    # lets a plugin re-add its own commands.
    owners: dict[str, str] = cli.__dict__.setdefault("_snnx_command_owners", {})
    for name in cli.commands:
        owners.setdefault(name, "snnx")
    for impl in state.pm.hook.snnx_register_commands.get_hookimpls():
        info = state.plugins.get(impl.plugin_name)
        if info is not None and info.error:
            continue
        before = dict(cli.commands)
        try:
            impl.function(cli=cli)
        except Exception as exc:
            if _trace():
                raise
            cli.commands.clear()
            cli.commands.update(before)
            if info is not None:
                info.error = f"plugin {impl.plugin_name!r} failed in snnx_register_commands: {_describe_error(exc)}"
            continue
        for name, command in list(cli.commands.items()):
            owner = owners.setdefault(name, impl.plugin_name)
            if name in before and command is not before[name] and owner != impl.plugin_name:
                cli.commands[name] = before[name]
                if info is not None:
                    info.error = (
                        f"plugin {impl.plugin_name!r} tried to replace the command 'snnx {name}' "
                        f"(from {owner!r}); plugins can only add commands: give it another name"
                    )


def get_backends() -> dict[str, Backend]:
    """Every registered backend by name."""
    return load_plugins().backends


def get_backend(name: str) -> Backend:
    """The backend called ``name``.

    :raises UnknownBackendError: naming the known backends and any plugin that failed to load.
    """
    state = load_plugins()
    if name in state.backends:
        return state.backends[name]
    known = ", ".join(sorted(state.backends)) or "none"
    broken = [i.name for i in state.plugins.values() if i.error]
    hint = f"; plugins that failed to load: {', '.join(broken)} (see `snnx plugins`)" if broken else ""
    msg = f"no backend named {name!r}; known backends: {known}{hint}"
    raise UnknownBackendError(msg)


def get_onnx_ops() -> OnnxOpRegistrar:
    """The registry of ONNX op handlers filled by every plugin."""
    return load_plugins().onnx_ops


def plugin_errors() -> dict[str, str]:
    """``{plugin: error}`` for every plugin that failed to load or register."""
    return {name: info.error for name, info in load_plugins().plugins.items() if info.error}


__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "get_backend",
    "get_backends",
    "get_onnx_ops",
    "load_plugins",
]
