"""The speed-up of data-parallel training from one process to several: snn-train's own epoch
(``snn_lib.train.train_epoch``, the model in DistributedDataParallel, each process its share of
every global batch) over synthetic N-MNIST-sized data made on each process's device.

    python benchmarks/ddp_speedup.py --device cuda                 # 1 GPU, then every GPU of the machine
    python benchmarks/ddp_speedup.py --device cpu --procs 1 2 --n 256 --T 3    # gloo on the CPU (a check)

For each number of processes it times the second of two epochs (the first is a warm-up) on process 0
and prints a JSON line: ``processes``, ``epoch_seconds``, ``samples_per_s`` and the speed-up over the
first number of processes given (one, by default). With fewer than two GPUs on a CUDA machine there is nothing to compare: it says so in its
JSON line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from common import make_data
from snn_lib.config import ModelConfig, TrainConfig
from snn_lib.data import FrameLoader
from snn_lib.distributed import World
from snn_lib.model import CSNN, make_loss
from snn_lib.train import prepare_model, train_epoch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, args: argparse.Namespace, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    device = torch.device("cuda", rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    try:
        frames, labels = make_data(args.n, args.T, seed=0, device=device)      # the same data on every process
        loader = FrameLoader(frames, labels, args.batch, shuffle=True, seed=0, device=device).shard(rank, world)
        torch.manual_seed(0)
        cfg = TrainConfig(batch_size=args.batch)
        model = CSNN(ModelConfig())
        net = prepare_model(model, cfg, device, World(rank, world, rank))
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        seconds = []
        for epoch in range(2):
            loader.set_epoch(epoch)
            dist.barrier()
            start = time.perf_counter()
            train_epoch(net, loader, optimizer, make_loss(cfg.loss), cfg, device, desc=f"{world} processes")
            dist.barrier()
            seconds.append(time.perf_counter() - start)
        if rank == 0:
            results.put(seconds[-1])
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--procs", type=int, nargs="+", help="numbers of processes (default: 1 and every GPU)")
    p.add_argument("--n", type=int, default=60_000, help="recordings per epoch (N-MNIST: 60,000)")
    p.add_argument("--T", type=int, default=25)
    p.add_argument("--batch", type=int, default=256, help="the global batch")
    args = p.parse_args(argv)
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    procs = args.procs or [1, gpus]
    if args.device == "cuda" and (gpus < 2 or max(procs) > gpus):
        print(json.dumps({"gpus": gpus, "speedup": None,
                          "note": f"{gpus} GPU(s): a speed-up over several GPUs needs two or more"}))
        return 0
    context = mp.get_context("spawn")
    first = None                                           # the epoch time of procs[0] processes
    for world in procs:
        results = context.SimpleQueue()
        mp.start_processes(_worker, args=(world, args, _free_port(), results), nprocs=world, join=True,
                           start_method="spawn")
        seconds = results.get()
        first = first or seconds
        print(json.dumps({"processes": world, "device": args.device, "n": args.n, "T": args.T, "batch": args.batch,
                          "epoch_seconds": round(seconds, 3), "samples_per_s": round(args.n / seconds, 1),
                          f"speedup_over_{procs[0]}": round(first / seconds, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
