"""Optimisers and learning-rate schedules as the papers used them.

The schedule is a pure function of the step (plus the reduce-on-plateau state),
so it is stored as a few numbers in a checkpoint's JSON and a resumed run gets
exactly the learning rate it would have had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError


class LazyAdadelta(torch.optim.Optimizer):
    """Adadelta (Zeiler 2012) that touches only the rows a sparse gradient names.

    Dense Adadelta, given a zero gradient for a row, only decays that row's two
    running averages by ``rho`` and leaves the row where it is. This optimiser
    records the step at which each row was last updated and applies the
    ``rho ** k`` of the ``k`` steps it sat out when the row next appears, so it
    gives dense Adadelta's result (to rounding) while a step costs the rows in the
    batch, not the whole table. That is what makes Kim's CNN, whose embedding
    (tens of thousands of rows) is updated every step, fast on a CPU. Dense
    gradients get the plain update.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float = 1.0, rho: float = 0.95, eps: float = 1e-6) -> None:
        if lr <= 0 or not 0 <= rho < 1 or eps <= 0:
            raise CnnlabError(f"LazyAdadelta needs lr > 0, 0 <= rho < 1 and eps > 0; got {lr}, {rho}, {eps}")
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group["lr"], group["rho"], group["eps"])
        return loss

    def _update(self, p: nn.Parameter, lr: float, rho: float, eps: float) -> None:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            state["acc_delta"] = torch.zeros_like(p)
            state["last_step"] = torch.zeros(p.shape[:1], dtype=torch.long, device=p.device)
        state["step"] += 1
        step, square_avg, acc_delta = state["step"], state["square_avg"], state["acc_delta"]
        if not p.grad.is_sparse:
            square_avg.mul_(rho).addcmul_(p.grad, p.grad, value=1 - rho)
            delta = acc_delta.add(eps).sqrt_().div_(square_avg.add(eps).sqrt_()).mul_(p.grad)
            acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=-lr)
            state["last_step"].fill_(step)
            return
        grad = p.grad.coalesce()
        rows, values = grad.indices()[0], grad.values()
        skipped = (step - 1 - state["last_step"][rows]).to(p.dtype)
        decay = torch.pow(rho, skipped).view(-1, *[1] * (p.dim() - 1))
        row_square = square_avg[rows].mul_(decay * rho).addcmul_(values, values, value=1 - rho)
        row_acc = acc_delta[rows].mul_(decay)
        delta = row_acc.add(eps).sqrt_().div_(row_square.add(eps).sqrt_()).mul_(values)
        acc_delta[rows] = row_acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
        square_avg[rows] = row_square
        state["last_step"][rows] = step
        p.index_add_(0, rows, delta, alpha=-lr)


# name -> (class, defaults). RMSProp's defaults are Inception-v3's (Szegedy et al.
# 2016, section 8: "RMSProp with decay of 0.9 and epsilon = 1.0"); torch calls the
# decay ``alpha``. Adadelta's are Zeiler's (2012) rho 0.95, epsilon 1e-6, lr 1.
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {"lr": 0.045, "alpha": 0.9, "eps": 1.0, "momentum": 0.9}),
    "adam": (torch.optim.Adam, {"lr": 1e-3}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.05}),
    "adadelta": (torch.optim.Adadelta, {"lr": 1.0, "rho": 0.95, "eps": 1e-6}),
    # Kim's CNN (2014): Adadelta over the batch's embedding rows only (sparse gradients).
    "lazy_adadelta": (LazyAdadelta, {"lr": 1.0, "rho": 0.95, "eps": 1e-6}),
}

SCHEDULES = ("constant", "step", "multistep", "cosine", "plateau")
UNITS = ("epoch", "step")


def build_optimizer(params: Iterable[nn.Parameter], spec: dict[str, Any]) -> torch.optim.Optimizer:
    """An optimiser from a recipe entry such as ``{"name": "sgd", "lr": 0.1, "momentum": 0.9,
    "nesterov": true, "weight_decay": 1e-4}``.

    Raises:
        ValueError: unknown name or an argument the optimiser does not take.
    """
    name = spec.get("name")
    if name not in OPTIMIZERS:
        raise CnnlabError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    cls, defaults = OPTIMIZERS[name]
    kwargs = {**defaults, **{k: v for k, v in spec.items() if k != "name"}}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    try:
        optimizer = cls(params, **kwargs)
    except (TypeError, ValueError) as err:
        raise CnnlabError(f"optimizer {name!r}: {err}") from None
    for group in optimizer.param_groups:
        # The schedule scales this base rate; keeping it in the group makes it
        # part of the optimiser's state and so of every checkpoint.
        group["initial_lr"] = group["lr"]
    return optimizer


class LrSchedule:
    """A learning-rate factor per step: warm-up, then one decay rule.

    Spec keys (all optional except ``name``):
        name: constant | step | multistep | cosine | plateau.
        unit: "epoch" or "step": what ``step_size``, ``milestones`` and ``warmup``
            count. ResNet on CIFAR counts iterations (``milestones: [32000, 48000]``,
            unit step); AlexNet and VGG count epochs. Epoch-unit decays change at
            epoch boundaries.
        gamma: the multiplier at each decay (0.1: "divide by 10").
        step_size: decay every this many units (step).
        milestones: decay at these units (multistep).
        min_factor: the floor of the cosine curve, as a fraction of the base rate.
        patience, threshold, max_reductions: reduce-on-plateau: multiply by
            ``gamma`` when the metric has not improved by more than ``threshold``
            (relative) for ``patience`` evaluations, at most ``max_reductions``
            times (AlexNet: three times).
        warmup: linear warm-up from ``warmup_start`` x base over this many units
            (Goyal et al. 2017; ResNet-110 on CIFAR warms up at lr 0.01).

    Args:
        spec: the recipe's ``schedule`` mapping.
        steps_per_epoch: iterations in one epoch.
        total_steps: the run's length in iterations (cosine needs it).
    """

    def __init__(self, spec: dict[str, Any], *, steps_per_epoch: int, total_steps: int) -> None:
        known = {"name", "unit", "gamma", "step_size", "milestones", "min_factor", "patience",
                 "threshold", "max_reductions", "warmup", "warmup_start"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise CnnlabError(f"schedule: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        self.name = spec.get("name")
        if self.name not in SCHEDULES:
            raise CnnlabError(f"unknown schedule {self.name!r}: use one of {', '.join(SCHEDULES)}")
        self.unit = spec.get("unit", "epoch")
        if self.unit not in UNITS:
            raise CnnlabError(f"schedule unit must be 'epoch' or 'step', got {self.unit!r}")
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.gamma = float(spec.get("gamma", 0.1))
        self.step_size = int(spec.get("step_size", 30))
        self.milestones = sorted(int(m) for m in spec.get("milestones", []))
        self.min_factor = float(spec.get("min_factor", 0.0))
        self.patience = int(spec.get("patience", 5))
        self.threshold = float(spec.get("threshold", 1e-4))
        self.max_reductions = spec.get("max_reductions")
        self.warmup = float(spec.get("warmup", 0))
        self.warmup_start = float(spec.get("warmup_start", 0.0))
        if self.name == "step" and self.step_size < 1:
            raise CnnlabError(f"schedule step_size must be >= 1, got {self.step_size}")
        if self.name == "multistep" and not self.milestones:
            raise CnnlabError("a multistep schedule needs milestones, e.g. [32000, 48000]")
        # Reduce-on-plateau state: the only part that is not a function of the step.
        self.plateau_factor = 1.0
        self.best: float | None = None
        self.bad_evals = 0
        self.reductions = 0

    def _units(self, step: int) -> float:
        # Epoch-unit rules use whole epochs, so the rate changes at epoch boundaries.
        return float(step) if self.unit == "step" else float(step // self.steps_per_epoch)

    def _warmup_steps(self) -> float:
        return self.warmup if self.unit == "step" else self.warmup * self.steps_per_epoch

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate at ``step`` (0-based)."""
        units = self._units(step)
        if self.name == "step":
            decay = self.gamma ** (units // self.step_size)
        elif self.name == "multistep":
            decay = self.gamma ** sum(units >= m for m in self.milestones)
        elif self.name == "cosine":
            progress = min(step / max(self.total_steps, 1), 1.0)
            decay = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            decay = 1.0
        warm = self._warmup_steps()
        if step < warm:
            decay *= self.warmup_start + (1 - self.warmup_start) * step / warm
        return decay * self.plateau_factor

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Sets every group's rate for ``step``; returns the first group's."""
        factor = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        return optimizer.param_groups[0]["lr"]

    def observe(self, metric: float) -> bool:
        """Feeds an evaluation's metric (lower is better) to reduce-on-plateau.

        Returns:
            True when this call divided the rate.
        """
        if self.name != "plateau":
            return False
        if self.best is None or metric < self.best * (1 - self.threshold):
            self.best, self.bad_evals = metric, 0
            return False
        self.bad_evals += 1
        exhausted = self.max_reductions is not None and self.reductions >= self.max_reductions
        if self.bad_evals <= self.patience or exhausted:
            return False
        self.plateau_factor *= self.gamma
        self.reductions += 1
        self.bad_evals = 0
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_factor": self.plateau_factor, "best": self.best,
                "bad_evals": self.bad_evals, "reductions": self.reductions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_factor = float(state["plateau_factor"])
        self.best = state["best"]
        self.bad_evals = int(state["bad_evals"])
        self.reductions = int(state["reductions"])
