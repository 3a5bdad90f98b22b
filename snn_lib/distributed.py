"""Data-parallel training on several GPUs or machines: PyTorch's DistributedDataParallel under torchrun.

::

    torchrun --nproc_per_node=4 $(which snn-train) \\
        exp_id=ddp train.batch_size=128
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d \\
        --rdzv-endpoint=HOST:29500 $(which snn-train) exp_id=ddp2

torchrun starts one process per GPU and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`snn_lib.train.run_training` then trains data-parallel by itself:

* each process takes an equal part of every batch (``train.batch_size`` is the *global* batch,
  split over the processes; :meth:`snn_lib.data.loader.FrameLoader.shard`), and
  DistributedDataParallel averages the gradients, so the processes together take the steps one
  process would take on the whole batch;
* process 0 alone holds the run folder's lock and writes the folder (log, metrics, checkpoints,
  curves, animations); the others only read (the data cache, the checkpoint to resume from);
* evaluation is split over the processes and summed (:func:`all_reduce_sum`);
* NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is process 0, the one that writes."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1


def world_from_env() -> World:
    """The place torchrun gave this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return World()
    return World(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def device_of(world: World, device: torch.device) -> torch.device:
    """Each process's own GPU (``cuda:LOCAL_RANK``, made current), or the CPU."""
    if device.type == "cuda" and world.parallel:
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"process {world.rank} has LOCAL_RANK={world.local_rank} but {torch.cuda.device_count()} "
                              "GPU(s) are visible: start at most one process per GPU (torchrun --nproc_per_node).")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def process_group(world: World, device: torch.device):
    """The process group of a data-parallel run for the ``with`` block (nothing for one process)."""
    if not world.parallel or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.world)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (nothing for one process)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes, in place (unchanged for one process)."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def from_main(world: World, work):
    """Run ``work()`` on process 0 and give every process its result, or raise its SnnError (or
    ConfigError) on every process, so that all stop together. ``work`` returns a picklable value."""
    if not world.parallel:
        return work()
    box = [None]
    if world.main:
        try:
            box[0] = ("ok", work())
        except Exception as err:  # noqa: BLE001 - sent to the other processes, then raised here too
            box[0] = ("error", err)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when the run is data-parallel, else as it is."""
    if not world.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


__all__ = ["World", "all_reduce_sum", "barrier", "device_of", "from_main", "process_group", "world_from_env", "wrap"]
