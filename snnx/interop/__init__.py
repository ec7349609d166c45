"""Interchange with other frameworks' NIR files, both directions (``specs/interop.md``).

::

    from snnx import interop
    result = interop.import_graph(nir.read("norse.nir"), "auto")   # -> Converted (graph, notes, assumed)
    result = interop.export_graph(snnx.load("model.nir"), "norse") # -> Converted, or InteropError

Profiles come from plugins through the ``snnx_register_interop`` hook; the built-in ones live in
:mod:`snnx.interop.profiles`, one module per framework.
"""

from __future__ import annotations

from typing import Any

import nir

from snnx.interop.base import Converted, Detection, InteropError, InteropRegistrar, Profile, full_shapes

#: A producer is named by ``--from auto`` only at or above this confidence.
AUTO_THRESHOLD = 0.5


def get_profiles() -> dict[str, Profile]:
    """Every registered interop profile by name."""
    from snnx.plugins import load_plugins

    return load_plugins().interop


def get_profile(name: str) -> Profile:
    """The profile called ``name``; :class:`InteropError` lists the known ones otherwise."""
    profiles = get_profiles()
    if name not in profiles:
        msg = f"no interop profile named {name!r}; known: {', '.join(sorted(profiles)) or 'none'}, auto"
        raise InteropError(msg)
    return profiles[name]


def detect(graph: nir.NIRGraph) -> list[Detection]:
    """Every importing profile's opinion of ``graph``, most confident first (a failing detector says 0)."""
    found = []
    for profile in get_profiles().values():
        if not profile.can_import:
            continue
        try:
            found.append(profile.detect(graph))
        except Exception as exc:  # a detector must not stop the others: it just has no opinion
            found.append(Detection(profile.name, 0.0, f"detector failed: {type(exc).__name__}: {exc}"))
    return sorted(found, key=lambda d: -d.confidence)


def guess(graph: nir.NIRGraph) -> Detection | None:
    """The most likely producer, or ``None`` when nobody reaches :data:`AUTO_THRESHOLD` or two tie."""
    ranked = detect(graph)
    if not ranked or ranked[0].confidence < AUTO_THRESHOLD:
        return None
    if len(ranked) > 1 and ranked[1].confidence == ranked[0].confidence:
        return None
    return ranked[0]


def import_graph(graph: nir.NIRGraph, source: str, assume: dict[str, Any] | None = None) -> Converted:
    """Rewrite a graph written by framework ``source`` (or ``"auto"``) into the snnx contract.

    The result is validated; its ``notes``/``assumed`` say what was changed and what was assumed.

    :raises InteropError: unknown profile, no confident guess, or a node the profile cannot read.
    """
    from snnx.ir.validate import validate

    assume = dict(assume or {})
    detection = None
    if source == "auto":
        from snnx.ir.semantics import has_contract

        if has_contract(graph):
            msg = "the file already carries the snnx contract (graph.metadata['snnx']): use it as it is"
            raise InteropError(msg)
        detection = guess(graph)
        if detection is None:
            ranked = detect(graph)
            best = ", ".join(f"{d.profile} {d.confidence:.0%}" for d in ranked[:3]) or "no profiles"
            msg = f"cannot tell which framework wrote this file ({best}); give --from NAME"
            raise InteropError(msg)
        source = detection.profile
    profile = get_profile(source)
    if not profile.can_import:
        raise InteropError(f"interop profile {source!r} cannot import")
    result = _guarded(profile, "import_", graph, assume)
    result.profile = source
    if detection is not None:
        result.notes.insert(0, f"producer: {detection.profile} ({detection.confidence:.0%} sure: {detection.reason})")
    full_shapes(result.graph)
    validate(result.graph)
    return result


def _guarded(profile: Profile, method: str, *args: Any) -> Converted:
    """Call a profile method; a bug inside it (anything but an SnnxError) is reported naming the profile
    and its plugin, like a backend's (the CLI then prints one line, exit 2)."""
    from snnx.errors import PluginError, SnnxError

    try:
        return getattr(profile, method)(*args)
    except SnnxError:
        raise
    except Exception as exc:
        msg = (f"interop profile {profile.name!r} (plugin {profile.plugin!r}) failed in {method.rstrip('_')}: "
               f"{type(exc).__name__}: {exc}")
        raise PluginError(msg) from exc


def export_graph(graph: nir.NIRGraph, target: str) -> Converted:
    """Rewrite a contract graph for framework ``target``'s importer.

    :raises InteropError: naming the node and why, where the framework cannot run the graph.
    """
    profile = get_profile(target)
    if not profile.can_export:
        raise InteropError(f"interop profile {target!r} cannot export")
    result = _guarded(profile, "export", graph)
    result.profile = target
    return result


__all__ = [
    "AUTO_THRESHOLD",
    "Converted",
    "Detection",
    "InteropError",
    "InteropRegistrar",
    "Profile",
    "detect",
    "export_graph",
    "get_profile",
    "get_profiles",
    "guess",
    "import_graph",
]
