"""Distributed set-up: torchrun's environment when present (NCCL on GPUs, gloo on CPU), else one process."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    """torchrun's environment when present (NCCL on GPUs, gloo on CPU), else one process."""
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world_size == 1:
        return Distributed(device="cuda" if cuda else "cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return Distributed(dist.get_rank(), world_size, f"cuda:{local_rank}" if cuda else "cpu")


def gather(distributed: Distributed, value):
    """Every rank's value, in rank order (a list of one without DDP)."""
    if distributed.world_size == 1:
        return [value]
    import torch.distributed as dist

    values = [None] * distributed.world_size
    dist.all_gather_object(values, value)
    return values
