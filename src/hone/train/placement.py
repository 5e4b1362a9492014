"""The placement: the one object that knows the hardware and the engine (device, precision, ranks).

The loop receives it and asks it for autocast, reductions and barriers, so a distributed engine
(torchrun, Ray Train) supplies its own placement without touching the loop's body.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch

from hone.models.precision import autocast, default_device, resolve_precision


@dataclass
class Placement:
    """One process's view of where and how it trains.

    Example:
        >>> rt = Placement.local("fp32", device="cpu")
        >>> rt.precision, rt.is_main, rt.world_size
        ('fp32', True, 1)
    """

    device: torch.device = field(default_factory=default_device)
    precision: str = "fp32"  # resolved: "fp32" or "bf16"
    world_size: int = 1
    rank: int = 0

    @classmethod
    def local(cls, precision: str = "auto", device: str | torch.device | None = None) -> Placement:
        """A single-process placement; ``auto`` precision is bf16 where the hardware has it natively."""
        dev = torch.device(device) if device is not None else default_device()
        return cls(device=dev, precision=resolve_precision(precision, dev))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """The mixed-precision context every forward pass of the run uses (training and evaluation)."""
        return autocast(self.precision, self.device)

    @classmethod
    def from_env(cls, precision: str = "auto") -> Placement:
        """This process's placement: data-parallel when launched by ``torchrun`` (or Ray Train), which set
        ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; the process group (gloo on CPU, NCCL on GPU) is
        joined here unless the launcher already did. Otherwise :meth:`local`."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls.local(precision)
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        return cls(device=dev, precision=resolve_precision(precision, dev), world_size=dist.get_world_size(),
                   rank=dist.get_rank())

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training forward pass goes through: DDP (gradients averaged over the
        processes at each backward) when there are several, else the model itself."""
        if self.world_size <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # static graph: the same parameters take part in every step, and the ones that never do (a
        # backbone's pooler, which mean pooling does not use) are found once, in the first step
        return DistributedDataParallel(model, device_ids=ids, static_graph=True)

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (a stop decided by one rank's clock)."""
        if self.world_size <= 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def all_reduce_mean(self, value: float) -> float:
        """The mean of ``value`` over all processes (the value itself in one process)."""
        if self.world_size <= 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def close(self) -> None:
        """Leave the process group (after the last collective of the fit)."""
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for in one process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
