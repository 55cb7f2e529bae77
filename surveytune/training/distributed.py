"""Data-parallel training over several processes, started by ``accelerate launch`` (or
``torchrun``): ``accelerate launch --num_processes N -m surveytune train ...``.

Every process holds the whole model (the LoRA weights start equal: same seed). Each optimizer
step's global batch (``batch_size`` items, as in a single process) is cut into equal shards,
one per process (``batch_size`` must be a multiple of the number of processes); after the
backward passes the gradients are averaged over the processes (all-reduce, as DDP does), so
every process takes the same optimizer step and the loss is that of the global batch.
Validation runs whole in every process (same numbers, so every process chooses the same
checkpoint); only the main process (rank 0) writes checkpoints, the adapter and
``training.json``, and the others wait for it at a barrier. Resuming reads the checkpoint in
every process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched in parallel)."""
    return int(os.environ.get("RANK", "0"))


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass(frozen=True)
class Group:
    """The processes training together; a single process is a group of one."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls) -> Group:
        """Join the launched processes (gloo on CPU, NCCL on GPUs, chosen by accelerate)."""
        if launched_world_size() <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState()
        return cls(state.process_index, state.num_processes)

    def shard(self, idx: Sequence[int]) -> list[int]:
        """This process's equal share of one batch of item indices."""
        if len(idx) % self.size:
            raise ValueError(f"a batch of {len(idx)} items cannot be split over {self.size} "
                             "processes; make --batch-size a multiple of the process count")
        per = len(idx) // self.size
        return list(idx[self.rank * per:(self.rank + 1) * per])

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the processes (one flat all-reduce)."""
        if self.size == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def average(self, value: float) -> float:
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item() / self.size)

    def any(self, flag: bool) -> bool:
        """True in every process when it is true in one (e.g. the time budget ran out)."""
        if self.size == 1:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()
