"""Devices: which torch device a command or API call runs on, checked before any work starts.

``--device`` / ``device=`` takes ``cpu`` (the default), ``cuda``, ``cuda:N`` or ``mps``. Only backends
whose :attr:`~snnx.registry.Backend.devices` lists the device kind can use it: the torch-executor
backends (snnTorch, Norse, SpikingJelly) take every kind; the reference simulator (numpy), Lava and
lava-dl run on the CPU only, and asking them for another device is an error (one line, exit code 2),
never a silent fall back to the CPU.

No torch import at module level: ``cpu`` is checked without torch, so the numpy-only core keeps working.
"""

from __future__ import annotations

import re
from typing import Any

from snnx.errors import SnnxError

#: The device kinds ``--device`` accepts.
DEVICE_KINDS = ("cpu", "cuda", "mps")
_SYNTAX = re.compile(r"^(cpu|mps|cuda)(?::(\d+))?$")


class DeviceError(SnnxError):
    """A device that is malformed, absent on this machine, or not supported by the chosen backend."""


def parse_device(device: Any) -> str:
    """``device`` (a string or ``torch.device``; ``None`` means ``cpu``) as a canonical string.

    Only the syntax is checked here, not whether the device exists (see :func:`resolve_device`).
    """
    if device is None:
        return "cpu"
    text = str(device).strip().lower()
    match = _SYNTAX.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        msg = f"--device {str(device)!r}: expected cpu, cuda, cuda:N or mps"
        raise DeviceError(msg)
    return text


def device_kind(device: str) -> str:
    """``cuda:1`` -> ``cuda``."""
    return device.split(":", 1)[0]


def check_available(device: str) -> None:
    """Raise :class:`DeviceError` (one line) when ``device`` does not exist on this machine."""
    kind = device_kind(device)
    if kind == "cpu":
        return
    try:
        import torch
    except ImportError as exc:
        msg = f"--device {device}: torch is not installed (pip install 'snnx[torch]'); use --device cpu"
        raise DeviceError(msg) from exc
    if kind == "cuda":
        if not torch.cuda.is_available():
            msg = (
                f"--device {device}: no CUDA device is available here (torch.cuda.is_available() is False); "
                "use --device cpu"
            )
            raise DeviceError(msg)
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            msg = f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            raise DeviceError(msg)
    elif kind == "mps" and not torch.backends.mps.is_available():
        msg = (
            f"--device {device}: no MPS device is available here (torch.backends.mps.is_available() is False); "
            "use --device cpu"
        )
        raise DeviceError(msg)


def check_backend_device(backend: str, device: str) -> None:
    """Raise :class:`DeviceError` when backend ``backend`` cannot run on ``device``'s kind.

    Checked before :func:`check_available`, so the answer does not depend on the machine's hardware.
    """
    if device_kind(device) == "cpu":
        return
    from snnx.plugins import get_backend

    impl = get_backend(backend)
    supported = tuple(getattr(impl, "devices", ("cpu",)))
    if device_kind(device) not in supported:
        torch_ones = ", ".join(torch_backends()) or "none installed"
        msg = (
            f"--device {device}: backend {backend!r} runs on {', '.join(supported)} only; "
            f"use --device cpu, or a torch backend ({torch_ones})"
        )
        raise DeviceError(msg)


def torch_backends() -> list[str]:
    """Registered backends that run on devices other than the CPU (sorted names)."""
    from snnx.plugins import get_backends

    return sorted(n for n, b in get_backends().items() if set(getattr(b, "devices", ("cpu",))) - {"cpu"})


def resolve_device(device: Any, backend: str | None = None) -> str:
    """Parse ``device``, check that ``backend`` (if given) supports it and that it exists here.

    :returns: the canonical device string (``"cpu"``, ``"cuda:1"``, ...).
    :raises DeviceError: with one line that says what to do instead.
    """
    text = parse_device(device)
    if backend is not None:
        check_backend_device(backend, text)
    check_available(text)
    return text


def move(model: Any, device: str) -> Any:
    """``model.to(device)`` for a torch module on a non-CPU device; the model unchanged otherwise."""
    if device_kind(device) == "cpu" or not hasattr(model, "to"):
        return model
    return model.to(device)
