"""AlexNet's hybrid parallelism: data-parallel convolutions, model-parallel dense layers.

Krizhevsky (2014), "One weird trick for parallelizing convolutional neural networks",
section 3, and the lecture: the convolutional trunk is copied to every rank and fed
its own slice of the batch (data parallel: the convolutions have few parameters and
much computation); each fully connected layer is split across the ranks by output
units, so rank r holds rows r*H/N..(r+1)*H/N of fc6, fc7 and fc8 (model parallel:
the dense layers have most of the parameters and little computation). The trunk
outputs of all ranks are gathered and run through the distributed dense layers
either one rank's slice at a time ("slices", the paper's variant (a): "batch by
batch") or all at once ("whole", variant (b)). Each dense layer's outputs are
gathered across ranks before the next layer.

The gathers are ``torch.distributed.nn`` collectives, whose backward is a
reduce-scatter: each slice's gradient goes back to the rank that produced it, and
each shard's to the rank that holds it. Every rank takes the loss of its own slice;
summed over the ranks that is N times the global batch's mean loss, so
:meth:`HybridParallel.sync_gradients` divides: the trunk's gradients are averaged over
the ranks (all-reduce, as DDP does) and the shards' are divided by N. The optimiser
steps each shard on its own rank. Checkpoints hold the gathered, ordinary state dict,
so a hybrid run resumes in one process and the other way round.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.train.distributed import DistContext

DENSE_BATCHES = ("slices", "whole")
DENSE_LAYERS = ("fc6", "fc7", "fc8")


def gather_cat(x: torch.Tensor, dim: int, context: DistContext) -> torch.Tensor:
    """Every rank's ``x`` concatenated along ``dim``, differentiable (backward: reduce-scatter)."""
    if not context.enabled:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=dim)


class ShardedLinear(nn.Module):
    """This rank's output units of a linear layer: rows ``[start, stop)`` of its weight."""

    def __init__(self, linear: nn.Linear, context: DistContext) -> None:
        super().__init__()
        out = linear.out_features
        if out % context.world_size:
            raise CnnlabError(f"a dense layer of {out} units cannot be split evenly over {context.world_size} ranks")
        rows = out // context.world_size
        self.start, self.stop, self.full_rows = context.rank * rows, (context.rank + 1) * rows, out
        self.weight = nn.Parameter(linear.weight.detach()[self.start : self.stop].clone())
        self.bias = nn.Parameter(linear.bias.detach()[self.start : self.stop].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class HybridParallel(nn.Module):
    """A model whose head is AlexNet/VGG's fc6-fc7-fc8, run the hybrid way (see the module docstring).

    The model's dense layers are replaced in place by this rank's shards, so the
    model holds 1/N of the dense weights. ``forward`` takes this rank's slice of the
    batch and returns its logits.

    Args:
        model: a classifier whose ``head`` has ``fc6``, ``fc7`` and ``fc8`` (``FullyConnectedHead``).
        context: the distributed job.
        dense_batches: "slices" (batch by batch) or "whole".
    """

    def __init__(self, model: nn.Module, context: DistContext, dense_batches: str = "slices") -> None:
        super().__init__()
        head = getattr(model, "head", None)
        if not all(isinstance(getattr(head, name, None), nn.Linear) for name in DENSE_LAYERS):
            raise CnnlabError(f"parallel: hybrid needs a model whose classifier is fc6, fc7 and fc8 (alexnet, "
                              f"alexnet_owt, the VGGs); {type(model).__name__} has none")
        if dense_batches not in DENSE_BATCHES:
            raise CnnlabError(f"dense_batches must be one of {', '.join(DENSE_BATCHES)}, got {dense_batches!r}")
        self.model, self.context, self.dense_batches = model, context, dense_batches
        for name in DENSE_LAYERS:
            setattr(head, name, ShardedLinear(getattr(head, name), context))
        self.shards = {f"head.{name}.{p}": getattr(head, name) for name in DENSE_LAYERS for p in ("weight", "bias")}

    # ----- the forward pass -----

    def _dense(self, x: torch.Tensor) -> torch.Tensor:
        """The distributed fc6-fc7-fc8 on features every rank holds alike."""
        head, ctx = self.model.head, self.context
        x = torch.relu(gather_cat(head.fc6(head.drop6(x)), 1, ctx))
        x = head.drop8(torch.relu(gather_cat(head.fc7(head.drop7(x)), 1, ctx)))
        return gather_cat(head.fc8(x), 1, ctx)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's flattened output (the input of fc6)."""
        return torch.flatten(self.model.head.pool(self.model.forward_features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.model.check_input(x)
        ctx = self.context
        local = x.shape[0]
        gathered = gather_cat(self.features(x), 0, ctx)  # every rank's slice: the global batch
        if self.dense_batches == "whole":
            return self._dense(gathered)[ctx.rank * local : (ctx.rank + 1) * local]
        # Batch by batch: every rank runs each rank's slice through the dense layers in turn.
        # Concatenating them keeps every slice's pass in every rank's graph, so all ranks
        # run the same collectives in the same order in backward (the other slices' get zeros).
        outputs = torch.cat([self._dense(piece) for piece in gathered.split(local)])
        return outputs[ctx.rank * local : (ctx.rank + 1) * local]

    def evaluation_model(self) -> nn.Module:
        """The model for evaluation: every rank gives it the same batch and gets the same logits."""
        return _SameBatch(self)

    # ----- gradients and state -----

    def sync_gradients(self) -> None:
        """Averages the trunk's gradients over the ranks and scales the shards' (see the module docstring)."""
        world = self.context.world_size
        sharded = {id(p) for module in self.shards.values() for p in module.parameters()}
        for parameter in self.model.parameters():
            if parameter.grad is None:
                continue
            if id(parameter) not in sharded and self.context.enabled:
                dist.all_reduce(parameter.grad)
            parameter.grad.div_(world)

    def _gather_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.context.enabled:
            return tensor
        pieces = [torch.empty_like(tensor) for _ in range(self.context.world_size)]
        dist.all_gather(pieces, tensor.contiguous())
        return torch.cat(pieces)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The ordinary state dict of the whole model (a collective: every rank calls it)."""
        state = self.model.state_dict()
        return {k: self._gather_rows(v) if k in self.shards else v for k, v in state.items()}

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Loads an ordinary state dict, keeping this rank's rows of the dense layers."""
        own = {k: self.local_rows(k, v) for k, v in state.items()}
        self.model.load_state_dict(own)

    def local_rows(self, key: str, value: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a full tensor of a sharded parameter (others pass through)."""
        if key not in self.shards:
            return value
        shard = self.shards[key]
        if value.shape[0] != shard.full_rows:
            raise CnnlabError(f"{key} has {value.shape[0]} rows, the model {shard.full_rows}")
        return value[shard.start : shard.stop]

    def sharded_parameter_keys(self, optimizer: torch.optim.Optimizer) -> dict[int, str]:
        """Optimiser parameter index -> state-dict key, for the sharded parameters."""
        names = {id(p): k for k, p in self.model.named_parameters()}
        params = [p for group in optimizer.param_groups for p in group["params"]]
        return {i: names[id(p)] for i, p in enumerate(params) if names.get(id(p)) in self.shards}

    def gather_optimizer_tensors(self, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer
                                 ) -> dict[str, torch.Tensor]:
        """Optimiser state tensors (``optim.<index>.<key>``) with the sharded ones gathered to full size."""
        sharded = self.sharded_parameter_keys(optimizer)
        # One order on every rank, so the gathers pair up (a state's order follows how it was loaded).
        return {k: self._gather_rows(tensors[k]) if _index(k) in sharded and tensors[k].dim() else tensors[k]
                for k in sorted(tensors, key=lambda k: (_index(k), k))}

    def local_optimizer_state(self, state: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """A full optimiser state dict cut to this rank's rows for the sharded parameters."""
        sharded = self.sharded_parameter_keys(optimizer)
        for index, entries in state["state"].items():
            if index in sharded:
                for name, value in entries.items():
                    if isinstance(value, torch.Tensor) and value.dim():
                        entries[name] = self.local_rows(sharded[index], value)
        return state


def _index(key: str) -> int:
    return int(key.split(".")[1])


class _SameBatch(nn.Module):
    """Evaluation under hybrid parallelism: the same batch on every rank, the trunk on each,
    the dense layers distributed; every rank gets the whole batch's logits."""

    evaluates_whole_batches = True

    def __init__(self, hybrid: HybridParallel) -> None:
        super().__init__()
        self.hybrid = hybrid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hybrid._dense(self.hybrid.features(x))
