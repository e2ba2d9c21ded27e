"""Training on several processes with PyTorch's own engine (`torchrun` + DistributedDataParallel).

`torchrun --nproc_per_node=N -m sentiment train --config ...` starts N processes with
RANK / WORLD_SIZE / LOCAL_RANK set; each joins the process group here (`nccl` on GPUs, `gloo`
on CPUs). A plain `sentiment train` is a group of one, and every method is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

from sentiment.errors import SentimentError


@dataclass
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of `values` over all processes."""
        if not self.distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def gather_rows(self, rows: np.ndarray, device: torch.device) -> np.ndarray:
        """Concatenate every process's rows [n_r, k], in rank order (sizes may differ by rank)."""
        if not self.distributed:
            return rows
        local = torch.as_tensor(rows, dtype=torch.float32, device=device)
        sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world_size)]
        torch.distributed.all_gather(sizes, torch.tensor([len(rows)], device=device))
        longest = int(max(size.item() for size in sizes))
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=torch.float32, device=device)
        padded[: len(rows)] = local
        gathered = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch.distributed.all_gather(gathered, padded)
        return np.concatenate([g[: int(s.item())].cpu().numpy() for g, s in zip(gathered, sizes)])

    def shutdown(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def join_process_group(device: torch.device) -> tuple[ProcessGroup, torch.device]:
    """Join the torchrun group if launched by it; return the group and this process's device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return ProcessGroup(), device
    group = ProcessGroup(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )
    if device.type == "cuda":
        if group.local_rank >= torch.cuda.device_count():
            raise SentimentError(
                f"local rank {group.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "start fewer processes per node"
            )
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, timeout=timedelta(minutes=10))
    return group, device


def rows_for_rank(rows: np.ndarray, group: ProcessGroup) -> np.ndarray:
    """This process's contiguous share of `rows` (shares differ by at most one row)."""
    return np.array_split(rows, group.world_size)[group.rank]
