"""Bytes communicated per step and step time: plain DDP against AlexNet's hybrid parallelism.

Krizhevsky (2014)'s argument: the convolutions have few parameters and much
computation, the dense layers the reverse, so replicate the convolutions (all-reduce
their small gradients) and split the dense layers (send their small activations).

Two modes:

    python benchmarks/hybrid_parallel.py --analytic            # bytes from the real tensor sizes
    torchrun --nproc-per-node 2 benchmarks/hybrid_parallel.py --model alexnet_owt --parallel hybrid

The analytic mode counts, per rank and step, what a ring collective sends: an
all-reduce of S bytes sends 2(N-1)/N x S, an all-gather (or its backward, a
reduce-scatter) of a result of S bytes sends (N-1)/N x S. The measured mode times
training steps on random 224x224 images and counts the bytes that entered each
collective (DDP through a communication hook, hybrid through its gathers and
all-reduces); rank 0 prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cnnlab import create_model
from cnnlab.hardware import machine
from cnnlab.train import hybrid as hybrid_module
from cnnlab.train.distributed import DistContext, init_distributed, shutdown
from cnnlab.train.hybrid import DENSE_LAYERS, HybridParallel

FLOAT = 4  # bytes


def dense_sizes(model: nn.Module) -> tuple[int, int, int, int]:
    """(trunk parameters, fc6 input D, hidden H, classes C)."""
    head = model.head
    dense = sum(p.numel() for name in DENSE_LAYERS for p in getattr(head, name).parameters())
    trunk = sum(p.numel() for p in model.parameters()) - dense
    return trunk, head.fc6.in_features, head.fc6.out_features, head.fc8.out_features


def analytic_row(name: str, batch: int, ranks: int) -> dict:
    """Bytes each rank sends per step under DDP and under hybrid parallelism, from the real sizes."""
    with torch.device("meta"):
        model = create_model(name)
    total = sum(p.numel() for p in model.parameters())
    trunk, d, h, c = dense_sizes(model)
    share = (ranks - 1) / ranks
    ddp = 2 * share * FLOAT * total
    activations = batch * (d + 2 * h + c)  # gathered features, fc6 and fc7 outputs, logits
    hybrid = 2 * share * FLOAT * trunk + 2 * share * FLOAT * activations  # forward gathers + backward scatters
    return {"model": name, "ranks": ranks, "global_batch": batch, "params": total, "trunk_params": trunk,
            "dense_params": total - trunk, "ddp_MB": round(ddp / 1e6, 1), "hybrid_MB": round(hybrid / 1e6, 1),
            "ratio": round(ddp / hybrid, 2)}


class Tally:
    """Bytes this rank sends in its collectives, counted as :func:`analytic_row` does (ring algorithms)."""

    def __init__(self) -> None:
        self.bytes = 0.0
        self.share = (dist.get_world_size() - 1) / dist.get_world_size()

    def add_all_reduce(self, tensor: torch.Tensor) -> None:
        self.bytes += 2 * self.share * tensor.numel() * tensor.element_size()

    def add_gather(self, result: torch.Tensor) -> None:
        # The all-gather, and in backward the reduce-scatter of the same size.
        self.bytes += 2 * self.share * result.numel() * result.element_size()


def _count_ddp(model: nn.Module, tally: Tally) -> nn.Module:
    ddp = nn.parallel.DistributedDataParallel(model)

    def hook(state, bucket):  # no annotations: DDP checks them, and this module's are strings
        tally.add_all_reduce(bucket.buffer())
        work = dist.all_reduce(bucket.buffer().div_(dist.get_world_size()), async_op=True)
        return work.get_future().then(lambda fut: fut.value()[0])

    ddp.register_comm_hook(None, hook)
    return ddp


def _count_hybrid(model: nn.Module, context: DistContext, batches: str, tally: Tally) -> HybridParallel:
    gather = hybrid_module.gather_cat

    def counted(x: torch.Tensor, dim: int, ctx: DistContext) -> torch.Tensor:
        result = gather(x, dim, ctx)
        tally.add_gather(result)
        return result

    hybrid_module.gather_cat = counted
    all_reduce = dist.all_reduce

    def counted_all_reduce(tensor: torch.Tensor, *args, **kwargs):
        tally.add_all_reduce(tensor)
        return all_reduce(tensor, *args, **kwargs)

    hybrid_module.dist.all_reduce = counted_all_reduce
    return HybridParallel(model, context, batches)


def measure(args: argparse.Namespace) -> dict:
    context, device = init_distributed("cpu")
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=1000, dropout=0.0)
    tally = Tally()
    net = (_count_hybrid(model, context, args.dense_batches, tally) if args.parallel == "hybrid"
           else _count_ddp(model, tally))
    optimizer = torch.optim.SGD([p for p in model.parameters()], lr=0.01, momentum=0.9)
    local = args.batch // context.world_size
    x = torch.rand(local, 3, args.size, args.size)
    y = torch.randint(0, 1000, (local,))
    times = []
    for step in range(args.steps + 1):  # the first is a warm-up
        tally.bytes = 0.0
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        if args.parallel == "hybrid":
            net.sync_gradients()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return {"model": args.model, "parallel": args.parallel, "dense_batches": args.dense_batches,
            "ranks": context.world_size, "global_batch": args.batch, "size": args.size,
            "step_s_median": round(statistics.median(times), 3), "step_s_min": round(min(times), 3),
            "step_s_max": round(max(times), 3), "steps": len(times),
            "collective_MB_per_step": round(tally.bytes / 1e6, 1),
            "dense_params_on_this_rank": sum(p.numel() for n, p in model.named_parameters() if n.startswith("head.fc")),
            "machine": machine(),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analytic", action="store_true", help="print the bytes from the tensor sizes and stop")
    parser.add_argument("--model", default="alexnet_owt")
    parser.add_argument("--parallel", choices=("ddp", "hybrid"), default="hybrid")
    parser.add_argument("--dense-batches", choices=("slices", "whole"), default="slices")
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if args.analytic:
        for name in ("alexnet", "alexnet_owt", "vgg16"):
            for ranks in (2, 4, 8):
                print(json.dumps(analytic_row(name, 128, ranks)))
        return
    try:
        result = measure(args)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result), flush=True)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
