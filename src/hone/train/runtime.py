"""The runtime: the one object that knows the hardware and the engine (device, precision, ranks).

The loop receives it and asks it for autocast, reductions and barriers, so a distributed engine
(torchrun, Ray Train) supplies its own runtime without touching the loop's body.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from hone.models.precision import autocast, default_device, resolve_precision


@dataclass
class Runtime:
    """One process's view of where and how it trains.

    Example:
        >>> rt = Runtime.local("fp32", device="cpu")
        >>> rt.precision, rt.is_main, rt.world_size
        ('fp32', True, 1)
    """

    device: torch.device = field(default_factory=default_device)
    precision: str = "fp32"  # resolved: "fp32" or "bf16"
    world_size: int = 1
    rank: int = 0

    @classmethod
    def local(cls, precision: str = "auto", device: str | torch.device | None = None) -> Runtime:
        """A single-process runtime; ``auto`` precision is bf16 where the hardware has it natively."""
        dev = torch.device(device) if device is not None else default_device()
        return cls(device=dev, precision=resolve_precision(precision, dev))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context every forward pass of the run uses (training and evaluation)."""
        return autocast(self.precision, self.device)

    def all_reduce_mean(self, value: float) -> float:
        """The mean of ``value`` over all processes (the value itself in one process)."""
        return value

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in one process)."""
