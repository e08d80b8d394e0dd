"""The training loop.

Data flows one way: the dataset is read once into uint8 tensors and moved to the
training device when it fits; each epoch's batches are slices of a permutation
seeded by (seed, epoch); each batch is augmented on the device with a generator
seeded by (seed, epoch, batch), so the run is reproducible, every epoch sees
different augmentations, and a run resumed in the middle of an epoch continues
with the very batches it would have had.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from cnnlab.data import ImageDataset, load_dataset
from cnnlab.evaluate import topk_correct
from cnnlab.registry import create_model
from cnnlab.train.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    pack_optimizer,
    restore_rng,
    rng_tensors,
    save_checkpoint,
    unpack_optimizer,
)
from cnnlab.train.config import TrainConfig, config_changes, input_pipeline
from cnnlab.train.distributed import DistContext, init_distributed, wrap_model
from cnnlab.train.losses import classification_loss
from cnnlab.train.monitor import Progress, RunLog
from cnnlab.train.optim import LrSchedule, build_optimizer


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite; the run stopped before updating the weights."""


@dataclass
class TrainResult:
    """How a run ended.

    Attributes:
        run_dir: the run directory.
        step: iterations done.
        epoch: epochs done (fractional when the run stopped mid-epoch).
        metrics: the last evaluation's row (test_top1_err etc., errors in %).
        best: the best value of ``best_metric`` and the step it was reached at.
        elapsed_s: wall time of this invocation.
        is_main: whether this process is rank 0, the one that reports.
    """

    run_dir: Path
    step: int
    epoch: float
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    is_main: bool = True


def seed_from(*parts: Any) -> int:
    """A 63-bit seed derived from ``parts``, e.g. (seed, "augment", epoch, batch)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, context: DistContext) -> torch.Tensor:
    """This rank's indices of every batch of an epoch, shape (steps, batch_size // world_size).

    The global batch is split into equal consecutive slices, one per rank, so N
    ranks see exactly the samples one process would. The incomplete last batch is
    dropped, which keeps every step's batch size and so the rate of the papers'
    schedules.
    """
    steps = n // batch_size
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed_from(seed, "order", epoch)))
    local = batch_size // context.world_size
    batches = order[: steps * batch_size].view(steps, batch_size)
    return batches[:, context.rank * local : (context.rank + 1) * local]


def place_dataset(dataset: ImageDataset, device: torch.device) -> ImageDataset:
    """The dataset on ``device`` when it takes at most half the free GPU memory, else on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if dataset.images.numel() > free // 2:
            return dataset
    return dataset.to(device)


class Trainer:
    """One training run: set-up, the loop, evaluation, logging and checkpoints.

    Args:
        config: the resolved config.
        run_dir: where the config, logs, curves and checkpoints go.
        resume: continue from the newest checkpoint in ``run_dir`` that loads.
        on_checkpoint: called with (step, path) after each ``last`` checkpoint.
        stream: where progress goes.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        stream: TextIO = sys.stderr,
    ) -> None:
        self.config, self.run_dir, self.stream = config, Path(run_dir), stream
        self.on_checkpoint = on_checkpoint
        self.context, self.device = init_distributed(config.device)
        self._check_setup()
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.train_set = place_dataset(self._load("train"), self.device)
        self.test_set = place_dataset(self._load("test"), self.device)
        self.model = self._build_model()
        self.optimizer = build_optimizer(self.model.parameters(), config.optimizer)
        self.steps_per_epoch = len(self.train_set) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size {config.batch_size} is larger than the training set ({len(self.train_set)} images)"
            )
        epochs_steps = config.epochs * self.steps_per_epoch
        self.total_steps = min(epochs_steps, config.max_steps or epochs_steps)
        self.schedule = LrSchedule(config.schedule, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.train_transform = input_pipeline(config.to_dict(), train=True)
        self.eval_transform = input_pipeline(config.to_dict(), train=False)
        self.step = 0
        self.best: dict[str, Any] = {}
        self.last_path: Path | None = None
        self._prepare_run_dir(resume)
        net = wrap_model(self.model, self.context, self.device)
        self.net = torch.compile(net) if config.compile else net

    # ----- set-up -----

    def _check_setup(self) -> None:
        cfg = self.config
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs a GPU (it uses a grad scaler); use bf16 on the CPU")
        if cfg.batch_size % self.context.world_size:
            raise ValueError(f"batch_size {cfg.batch_size} must divide evenly over {self.context.world_size} ranks")

    def _load(self, split: str) -> ImageDataset:
        cfg = self.config
        return load_dataset(cfg.dataset, split, cfg.data_dir, on_corrupt=cfg.on_corrupt, image_size=cfg.image_size)

    def _build_model(self) -> nn.Module:
        torch.manual_seed(self.config.seed)
        images = self.train_set.images
        model = create_model(self.config.model, num_classes=len(self.train_set.classes), in_chans=images.shape[1],
                             **self.config.model_kwargs)
        self.model_spec = {"name": self.config.model, "num_classes": len(self.train_set.classes),
                           "in_chans": int(images.shape[1]), "kwargs": self.config.model_kwargs}
        memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        model = model.to(self.device, memory_format=memory_format)
        # Dropout and other in-model randomness: its own stream per rank.
        torch.manual_seed(seed_from(self.config.seed, "model-rng", self.context.rank))
        return model

    def _prepare_run_dir(self, resume: bool) -> None:
        checkpoints = self.run_dir / "checkpoints"
        found = latest_checkpoint(checkpoints) if resume and checkpoints.is_dir() else None
        if not resume and any(checkpoints.glob("*.json")):
            raise ValueError(
                f"{self.run_dir} already holds a run: pass --resume to continue it or choose another --out"
            )
        if found is not None:
            self._restore(found)
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
            self.log = RunLog(self.run_dir, resume_step=self.step)
            if found is not None:
                print(f"resuming from {found.path} (step {self.step})", file=self.stream)
        self.context.barrier()

    def _restore(self, checkpoint: Checkpoint) -> None:
        changed = config_changes(checkpoint.meta["config"], self.config.to_dict())
        if changed:
            raise ValueError(
                f"{checkpoint.path} was trained with different settings ({', '.join(changed)}); "
                "resume with the same recipe and overrides, or start a new run with another --out"
            )
        self.model.load_state_dict(checkpoint.model_state())
        self.optimizer.load_state_dict(unpack_optimizer(checkpoint))
        self.schedule.load_state_dict(checkpoint.meta["schedule"])
        if checkpoint.meta["scaler"]:
            self.scaler.load_state_dict(checkpoint.meta["scaler"])
        restore_rng(checkpoint)
        self.step = checkpoint.step
        self.best = checkpoint.meta["best"]
        self.last_path = checkpoint.path

    # ----- the loop -----

    def fit(self) -> TrainResult:
        """Trains until ``epochs`` or ``max_steps``; returns how it ended."""
        start = time.perf_counter()
        metrics: dict[str, Any] = {}
        try:
            while self.step < self.total_steps:
                epoch = self.step // self.steps_per_epoch
                train_stats, progress = self._train_epoch(epoch)
                metrics = self._end_epoch(epoch, train_stats, progress, start)
        finally:
            if self.context.is_main:
                self.log.close()
        return TrainResult(self.run_dir, self.step, self.step / self.steps_per_epoch, metrics, self.best,
                           time.perf_counter() - start, self.context.is_main)

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.config.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _batch(self, dataset: ImageDataset, index: torch.Tensor, transform: Callable, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(dataset.images.device)
        images = dataset.images[index].to(self.device, non_blocking=True)
        labels = dataset.labels[index].to(self.device, non_blocking=True)
        # A CPU generator drives the augmentation wherever the batch is, so a seed
        # means the same crops on every device.
        x = transform(images.float().div_(255), torch.Generator().manual_seed(seed))
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], Progress]:
        """Trains from the current step to the end of ``epoch`` (or of the run)."""
        cfg, ctx = self.config, self.context
        batches = epoch_batches(len(self.train_set), cfg.batch_size, cfg.seed, epoch, ctx)
        first = self.step - epoch * self.steps_per_epoch
        stop = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        progress = Progress(epoch, math.ceil(self.total_steps / self.steps_per_epoch), stop - first, self.stream)
        self.model.train()
        loss_sum, correct, seen = 0.0, 0.0, 0
        for i in range(first, stop):
            x, y = self._batch(self.train_set, batches[i], self.train_transform,
                               seed_from(cfg.seed, "augment", epoch, i, ctx.rank))
            loss, hits = self._train_step(x, y, epoch)
            self.step += 1
            loss_sum, correct, seen = loss_sum + loss, correct + hits, seen + 1
            if ctx.is_main:
                progress.update(i + 1 - first, loss_sum / seen, correct / (seen * cfg.batch_size),
                                seen * cfg.batch_size)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and i + 1 < stop:
                self._checkpoint({})
        images = seen * cfg.batch_size
        elapsed = time.perf_counter() - progress.start
        return {"train_loss": loss_sum / seen, "train_top1_err": 100 * (1 - correct / images),
                "images_per_s": round(images / elapsed, 1)}, progress

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, epoch: int) -> tuple[float, float]:
        cfg = self.config
        self.lr = self.schedule.apply(self.optimizer, self.step)
        with self._autocast():
            output = self.net(x)
        loss, logits = classification_loss(output, y, aux_weights=getattr(self.model, "aux_weights", ()),
                                           label_smoothing=cfg.label_smoothing)
        # Every rank checks the same averaged numbers, so all stop together.
        stats = torch.stack([loss.detach(), logits.argmax(1).eq(y).sum().float()])
        stats = self.context.all_reduce_sum(stats)
        mean_loss, hits = stats[0].item() / self.context.world_size, stats[1].item()
        if not math.isfinite(mean_loss):
            kept = (f"the last good checkpoint is {self.last_path}" if self.last_path
                    else "no checkpoint was written yet")
            raise NonFiniteLossError(
                f"loss is {mean_loss} at step {self.step + 1} (epoch {epoch + 1}); the run stopped before updating "
                f"the weights; {kept}. Lower the learning rate or enable grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return mean_loss, hits

    def _end_epoch(self, epoch: int, train_stats: dict[str, float], progress: Progress, start: float
                   ) -> dict[str, Any]:
        """Evaluates when due, reports, logs and checkpoints; returns the epoch's row."""
        cfg = self.config
        finished = self.step >= self.total_steps
        row: dict[str, Any] = {"epoch": round(self.step / self.steps_per_epoch, 4), "step": self.step,
                               "lr": self.lr, **train_stats}
        if (epoch + 1) % cfg.eval_every == 0 or finished:
            row.update(self.evaluate())
            self.schedule.observe(row[f"test_{cfg.best_metric}"])
        row["elapsed_s"] = round(time.perf_counter() - start, 2)
        if self.context.is_main:
            suffix = (f" | test loss {row['test_loss']:.4f} top-1 err {row['test_top1_err']:.2f}%"
                      if "test_loss" in row else "")
            progress.finish(progress.total, train_stats["train_loss"], 1 - train_stats["train_top1_err"] / 100,
                            progress.total * cfg.batch_size, suffix)
            self.log.log_epoch(row)
        self._checkpoint(row)
        return row

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Test loss, top-1 and top-5 error (%) on this rank's share of the test split, summed over ranks."""
        self.model.eval()
        share = torch.arange(len(self.test_set)).tensor_split(self.context.world_size)[self.context.rank]
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        for index in share.split(self.config.eval_batch_size):
            x, y = self._batch(self.test_set, index, self.eval_transform, 0)
            with self._autocast():
                logits = self.model(x).float()
            hits = topk_correct(logits, y, (1, 5))
            totals += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(), hits[1], hits[5], len(y)],
                                   dtype=torch.float64, device=self.device)
        loss, top1, top5, n = self.context.all_reduce_sum(totals).tolist()
        self.model.train()
        return {"test_loss": loss / n, "test_top1_err": 100 * (1 - top1 / n), "test_top5_err": 100 * (1 - top5 / n)}

    # ----- checkpoints -----

    def _checkpoint(self, row: dict[str, Any]) -> None:
        """Writes ``last`` (and ``best`` when the chosen metric improved) from rank 0."""
        key = f"test_{self.config.best_metric}"
        improved = key in row and (not self.best or row[key] < self.best["value"])
        if improved:
            self.best = {"metric": self.config.best_metric, "value": row[key], "step": self.step}
        if self.context.is_main:
            tensors, optimizer_meta = self._state()
            meta = {"config": self.config.to_dict(), "model": self.model_spec, "classes": self.train_set.classes,
                    "epoch": self.step / self.steps_per_epoch, "step": self.step, "metrics": row,
                    "world_size": self.context.world_size,
                    "optimizer": optimizer_meta, "schedule": self.schedule.state_dict(),
                    "scaler": self.scaler.state_dict(), "best": self.best}
            self.last_path = save_checkpoint(self.run_dir / "checkpoints", "last", tensors, meta)
            if improved:
                save_checkpoint(self.run_dir / "checkpoints", "best", tensors, meta)
            if self.on_checkpoint:
                self.on_checkpoint(self.step, self.last_path)
        self.context.barrier()

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optimizer_tensors, optimizer_meta = pack_optimizer(self.optimizer)
        return {**tensors, **optimizer_tensors, **rng_tensors()}, optimizer_meta


def train(
    config: TrainConfig, run_dir: str | Path, *, resume: bool = False, stream: TextIO = sys.stderr
) -> TrainResult:
    """Runs :class:`Trainer` (see there) and returns how the run ended."""
    return Trainer(config, run_dir, resume=resume, stream=stream).fit()
