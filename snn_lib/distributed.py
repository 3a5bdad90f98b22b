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
* NCCL on GPUs, gloo on CPUs;
* the settings torchrun gives (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``,
  ``MASTER_PORT``) are checked before anything starts, and the processes must all meet within
  ``train.rendezvous_timeout_s`` seconds (:func:`process_group`), while Ctrl-C and SIGTERM are
  honoured; an error is raised on every process, but said once: process 0 says it, the others
  raise it marked :func:`relayed`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError, SnnError

RENDEZVOUS_TIMEOUT_S = 60.0
"""How long the processes of a data-parallel run wait for each other to start (``train.rendezvous_timeout_s``)."""


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
    """The place torchrun gave this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one
    process. A missing or bad value (and a missing ``MASTER_ADDR`` or ``MASTER_PORT``) is a
    one-line ConfigError, before anything starts."""
    world = _env_int("WORLD_SIZE", "1", 1)
    if world == 1:
        return World()
    rank = _env_int("RANK", None, 0)
    if rank >= world:
        raise ConfigError(f"RANK={rank} is not valid with WORLD_SIZE={world}: expected 0 to {world - 1}. "
                          f"{_ENV_HINT}")
    local_rank = _env_int("LOCAL_RANK", "0", 0)
    if not os.environ.get("MASTER_ADDR", "").strip():
        raise ConfigError(f"WORLD_SIZE={world} but MASTER_ADDR is not set: the processes cannot find process 0. "
                          f"{_ENV_HINT}")
    port = _env_int("MASTER_PORT", None, 1)
    if port > 65535:
        raise ConfigError(f"MASTER_PORT={port} is not valid: expected a port from 1 to 65535. {_ENV_HINT}")
    return World(rank, world, local_rank)


_ENV_HINT = ("torchrun sets it; start a data-parallel run with torchrun --nproc_per_node=N $(which snn-train) or "
             "snn-train train.distributed=N, or unset WORLD_SIZE for one process.")


def _env_int(name: str, default: str | None, low: int) -> int:
    """The environment variable ``name`` as an integer >= ``low`` (``default`` where it is unset;
    None: it must be set)."""
    text = os.environ.get(name, default)
    if text is None:
        raise ConfigError(f"{name} is not set, but WORLD_SIZE={os.environ.get('WORLD_SIZE')} asks for a "
                          f"data-parallel run. {_ENV_HINT}")
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfigError(f"{name}={text!r} is not valid: expected an integer >= {low}. {_ENV_HINT}")
    return value


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
def process_group(world: World, device: torch.device, timeout_s: float = RENDEZVOUS_TIMEOUT_S):
    """The process group of a data-parallel run for the ``with`` block (nothing for one process).

    The processes must all meet within ``timeout_s`` seconds, else a one-line SnnError. The meeting
    (torch's ``init_process_group``, which blocks in C++) runs in a helper thread while this one
    waits in Python, so that Ctrl-C and SIGTERM stop a process that waits for the others."""
    if not world.parallel or dist.is_initialized():
        yield
        return
    _meet(world, "nccl" if device.type == "cuda" else "gloo", timeout_s)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _meet(world: World, backend: str, timeout_s: float) -> None:
    outcome: list = []

    def connect() -> None:
        try:
            dist.init_process_group(backend, rank=world.rank, world_size=world.world)
            outcome.append(None)
        except Exception as err:  # noqa: BLE001 - reported by the waiting thread
            outcome.append(err)

    thread = threading.Thread(target=connect, name="snn_lib rendezvous", daemon=True)
    thread.start()
    thread.join(timeout_s)              # interruptible: a signal's handler runs here
    where = (f"process {world.rank} of {world.world}, MASTER_ADDR={os.environ.get('MASTER_ADDR')} "
             f"MASTER_PORT={os.environ.get('MASTER_PORT')}")
    if thread.is_alive():
        raise SnnError(f"the {world.world} data-parallel processes did not all start within "
                       f"train.rendezvous_timeout_s={timeout_s:g} s ({where}); start every process (RANK 0 to "
                       f"{world.world - 1}) with the same MASTER_ADDR and MASTER_PORT, or raise the timeout.")
    if outcome and outcome[0] is not None:
        err = outcome[0]
        why = " ".join(str(err).split())[:300] or type(err).__name__
        raise SnnError(f"the data-parallel processes could not meet ({where}): {why}; check MASTER_ADDR and "
                       "MASTER_PORT (a free port on process 0's machine).")


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
        if not world.main:
            value.relayed = True
        raise value
    return value


def relayed(err: BaseException) -> bool:
    """Whether ``err`` is process 0's error raised again on another process (:func:`from_main`),
    which process 0 reports: the others stop without repeating it."""
    return bool(getattr(err, "relayed", False))


def launch_processes(launch, entry, argument, run_dir) -> dict:
    """Start the processes of ``launch`` (a ``LaunchConfig`` of ``torch.distributed.launcher.api``,
    torch's elastic launcher, the engine of torchrun), each running ``entry(argument)``; returns their
    results by rank. An SnnError that a process returns (instead of raising it: no traceback) is
    raised here, once, process 0's first; a process that dies (``kill -9``, a crash) stops them all
    with a one-line SnnError. torch's own reports of the failure are silenced."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith(("torch.distributed", "torch.multiprocessing"))]
    loggers += [logging.getLogger(n) for n in ("torch.distributed", "torch.multiprocessing")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        returned = elastic_launch(launch, entry)(argument)
    except ChildFailedError as err:
        rank, failure = min(err.failures.items())
        how = (f"killed by {failure.signal_name()}" if failure.exitcode is not None and failure.exitcode < 0
               else f"exit status {failure.exitcode}")
        raise SnnError(f"process {rank} of the data-parallel run in {run_dir} died ({how}), so the others were "
                       "stopped; continue with train.resume=true and the same exp_id.") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    errors = [returned[rank] for rank in sorted(returned) if isinstance(returned[rank], BaseException)]
    if errors:
        raise next((err for err in errors if not relayed(err)), errors[0])
    return returned


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when the run is data-parallel, else as it is."""
    if not world.parallel:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


__all__ = ["RENDEZVOUS_TIMEOUT_S", "World", "all_reduce_sum", "barrier", "device_of", "from_main", "launch_processes",
           "process_group",
           "relayed", "world_from_env", "wrap"]
