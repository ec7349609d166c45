"""Everything about the IR itself: file I/O, the discrete-time contract, validation, the reference
simulator and graph passes. Nothing here imports a training framework."""

from snnx.ir.schedule import Schedule, schedule

__all__ = ["Schedule", "schedule"]
