"""The pipeline's training loop under torch.distributed DDP (Gloo), for the Horovod comparison.

Launched by `torchrun --standalone --nproc-per-node N benchmarks/ddp_worker.py --dataset URI --params JSON`.
Same data (load_split from S3), model (build_model), sampler, per-rank batch, optimizer, step
(training.loop.train_epoch) and samples/s clock as training/worker.py; only the gradient exchange
differs (DDP's bucketed allreduce instead of hvd.DistributedOptimizer). Rank 0 prints
`DDP_RESULT {json}` last.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from gauntlet import storage
from gauntlet.training.data import batch_loader, load_preprocessor, load_split
from gauntlet.training.loop import train_epoch
from gauntlet.training.model import build_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--params", required=True)
    args = parser.parse_args()
    params: dict[str, Any] = json.loads(args.params)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(int(params.get("threads_per_worker", 1)))
    torch.manual_seed(params["seed"])

    scratch = storage.temp_dir()
    split, manifest = load_split(args.dataset, "train", scratch.name)
    preprocessor = load_preprocessor(args.dataset)
    model = build_model(params["model"], preprocessor, len(manifest["schema"]["classes"]))
    ddp = DistributedDataParallel(model)  # broadcasts rank 0's initial weights
    optimizer = torch.optim.SGD(
        ddp.parameters(), lr=params["lr"] * size, momentum=params["momentum"], weight_decay=params["weight_decay"]
    )
    dataset = TensorDataset(torch.from_numpy(split.features), torch.from_numpy(split.labels))
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=size, rank=rank, shuffle=True, seed=params["seed"]
    )
    loader = batch_loader(dataset, sampler, params["batch_size"])
    curve = []
    for epoch in range(1, params["epochs"] + 1):
        sampler.set_epoch(epoch)
        totals = train_epoch(ddp, optimizer, loader, torch.device("cpu"))
        sums = torch.tensor([totals.loss_sum, float(totals.seen)], dtype=torch.float64)
        dist.all_reduce(sums)
        curve.append(
            {
                "epoch": epoch,
                "train_loss": sums[0].item() / sums[1].item(),
                "samples_per_s": sums[1].item() / totals.seconds,
            }
        )
    if rank == 0:
        print("DDP_RESULT " + json.dumps({"curve": curve, "world_size": size, "pid": os.getpid()}), flush=True)
    dist.destroy_process_group()
    scratch.cleanup()


if __name__ == "__main__":
    main()
