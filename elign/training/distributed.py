"""Multi-process data parallelism for pretraining (``torchrun`` + DistributedDataParallel).

Every rank walks the same global batch sequence; rank r trains on shard r of each global batch (B / W
molecules), padded to the *global* batch's largest molecule, with the global batch's noise sliced to that
shard. DDP averages the gradients, so one W-process step equals one single-process step on the global
batch (EDM's loss divides by the padded N, hence the common padding). Backend: gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

from elign.config import ConfigError
from elign.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """rank / world_size of this process (0 / 1 without a process group) and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_size: int) -> slice:
        """Rows of the global batch this rank trains on; batch_size must be divisible by world_size."""
        check_divisible(batch_size, self.world_size)
        b = batch_size // self.world_size
        return slice(self.rank * b, (self.rank + 1) * b)


def check_divisible(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ConfigError(
            f"pretrain.batch_size={batch_size} is not divisible by the number of processes "
            f"({world_size}); every process must get the same number of molecules per step"
        )


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device_choice: Literal["auto", "cpu", "cuda"] = "auto") -> DistInfo:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, …) if WORLD_SIZE > 1.

    Backend: nccl when training on CUDA, gloo on CPU. Without torchrun: rank 0 of 1, no process group.
    """
    world = env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, "pretrain.device", local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return current(device_choice)


def current(device_choice: Literal["auto", "cpu", "cuda"] = "auto") -> DistInfo:
    """This process's DistInfo from an initialised process group (or the single-process default)."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    else:
        rank, world, local_rank = 0, 1, 0
    return DistInfo(rank, world, local_rank, resolve_device(device_choice, "pretrain.device", local_rank))


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average of a tensor over all ranks (identity in a single process)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
