"""Data-parallel training under ``torchrun``.

``torchrun`` starts one process per rank and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; without them a run is a
single process. Each rank takes its own slice of every global batch, gradients
are averaged by :class:`~torch.nn.parallel.DistributedDataParallel` (gloo on
CPU, nccl on GPU), and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly one-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this rank writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (``tensor`` itself when single-process)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def pick_device(preference: str, context: DistContext) -> torch.device:
    """The training device: "auto" takes this rank's GPU when there is one."""
    if preference not in ("auto", "cpu", "cuda"):
        raise CnnlabError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("device 'cuda' was asked for but no GPU is available; use --device cpu")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", context.local_rank)


def init_distributed(device_preference: str = "auto") -> tuple[DistContext, torch.device]:
    """Joins the ``torchrun`` job if there is one; returns the context and this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        context = DistContext()
        return context, pick_device(device_preference, context)
    context = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = pick_device(device_preference, context)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return context, device


def wrap_model(model: nn.Module, context: DistContext, device: torch.device) -> nn.Module:
    """The model wrapped in DDP for a multi-process job, else unchanged."""
    if not context.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap_model(net: nn.Module) -> nn.Module:
    """The model inside DDP's wrapper, which does not pass the model's own attributes
    (``aux_weights``) through; ``torch.compile``'s wrapper is looked through too."""
    net = getattr(net, "_orig_mod", net)
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def shutdown() -> None:
    """Leaves the process group, if one was joined."""
    if dist.is_initialized():
        dist.destroy_process_group()
