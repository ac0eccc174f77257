"""The run environment a reference sees: rank, world size, device, seed, DDP and reductions.

Process groups come from the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``...): gloo on CPU, nccl on CUDA. Nothing happens at import
time; ``RunEnv.from_environment`` is called from ``main()``.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import random

import numpy as np
import torch
import torch.distributed as dist

# A rank that dies or stops answering must not hang the others forever: every collective
# gives up after this long and the run is logged as aborted.
COLLECTIVE_TIMEOUT = datetime.timedelta(
    seconds=float(os.environ.get("MLPERF_TRAIN_COLLECTIVE_TIMEOUT_S", "120"))
)


@dataclasses.dataclass
class RunEnv:
    """Everything rank-specific a benchmark may use. One per process, shared by the runs
    of a series; ``seed`` is set per run by the engine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    # The current run's dataset handle (benchmark.Dataset); closed until run_start.
    dataset: object = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: str | None = None) -> "RunEnv":
        """Read the torchrun variables and start the process group when there is more than
        one process. ``device``: ``cpu``, ``cuda`` or None (cuda when available)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
        if want_cuda:
            torch.cuda.set_device(local_rank)
            torch_device = torch.device("cuda", local_rank)
        else:
            torch_device = torch.device("cpu")
        if world_size > 1 and not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if want_cuda else "gloo",
                rank=rank,
                world_size=world_size,
                timeout=COLLECTIVE_TIMEOUT,
            )
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)

    # --- seeds ---------------------------------------------------------------------------
    def seed_everything(self, seed: int) -> None:
        """The same seed on every rank (identical initial weights; data shards differ by
        rank through the samplers, not through the seed)."""
        self.seed = seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # --- model and reductions ------------------------------------------------------------
    def wrap_model(self, model: torch.nn.Module, **ddp_kwargs) -> torch.nn.Module:
        """DistributedDataParallel when there is more than one process, else the model."""
        if not self.is_distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place and return it (a no-op on one process)."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor

    def broadcast_object(self, value):
        """Rank 0's ``value`` on every rank."""
        if not self.is_distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank. For results that
        cannot be summed across ranks, e.g. COCO detections (mAP is not additive)."""
        if not self.is_distributed:
            return [value]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def shard_batch(self, global_batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (dimension 0).

        When every rank draws the same global batch (same seed) and keeps its slice, the
        gradients DDP averages are those of the global batch: training follows the same
        trajectory whatever the world size (tests/test_distributed.py shows it).
        """
        part = self.shard(global_batch.shape[0])
        return global_batch[part.start:part.stop]

    def shard(self, num_items: int) -> range:
        """This rank's contiguous share of ``num_items`` items (for evaluation sets)."""
        per_rank = -(-num_items // self.world_size)
        start = min(self.rank * per_rank, num_items)
        return range(start, min(start + per_rank, num_items))

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
