"""The one training loop, for every task (:mod:`cnnlab.train.task`).

The Trainer owns what every task shares: precision, channels_last, compile, the
learning-rate schedule, gradient clipping, the non-finite-loss stop, progress,
metrics.csv, curves.png, TensorBoard, atomic checkpoints with ``last`` and
``best``, bit-exact resume and DDP. The task owns its data: each batch is a pure
function of (seed, epoch, step), so a run resumed in the middle of an epoch
continues with the very batches it would have had.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import torch
import yaml
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.checkpoint import (
    Checkpoint,
    NonFiniteTensorsError,
    check_finite,
    load_checkpoint,
    loadable_checkpoints,
    pack_optimizer,
    restore_rng,
    rng_tensors,
    save_checkpoint,
    unpack_optimizer,
)
from cnnlab.train.config import TrainConfig, config_changes, resolve_precision
from cnnlab.train.distributed import init_distributed, wrap_model
from cnnlab.train.finetune import load_initial_weights, read_initial_weights
from cnnlab.train.hybrid import HybridParallel
from cnnlab.progress import Progress
from cnnlab.train.monitor import RunLog, format_metrics
from cnnlab.train.optim import LrSchedule, build_optimizer
from cnnlab.train.task import higher_is_better, seed_from, task_class, task_name_for


class NonFiniteLossError(CnnlabError):
    """The loss became NaN or infinite; the run stopped before updating the weights."""


@dataclass
class TrainResult:
    """How a run ended.

    Attributes:
        run_dir: the run directory.
        step: iterations done.
        epoch: epochs done (fractional when the run stopped mid-epoch).
        metrics: the last evaluation's row (fractions).
        best: the best value of the best metric, its name and the step it was reached at.
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


# What cnnlab writes into a run directory; `--out` into a folder holding anything else is refused.
RUN_FILES = ("config.yaml", "metrics.csv", "curves.png", "tensorboard", "checkpoints")


def check_run_dir(run_dir: Path, own: tuple[str, ...]) -> None:
    """Refuses a run directory that holds files cnnlab did not write (``own`` names, globs allowed)."""
    if not run_dir.is_dir():
        if run_dir.exists():
            raise CnnlabError(f"--out {run_dir} is a file, not a folder: choose another --out")
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if not any(p.match(pattern) for pattern in own))
    if foreign:
        raise CnnlabError(f"{run_dir} holds files that are not a cnnlab run ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}); choose a new --out")


def _kept(last_good: Path | None) -> str:
    return f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"


def check_finite_loss(loss: float, grad_norm: float, step: int, epoch: int, last_good: Path | None) -> None:
    """The one non-finite check of every task: a NaN or infinite loss or gradient stops the
    run before the update of ``step``."""
    if math.isfinite(loss) and math.isfinite(grad_norm):
        return
    what = f"loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm} (loss {loss:.4g})"
    raise NonFiniteLossError(
        f"{what} at step {step} (epoch {epoch}); the run stopped before updating the weights; "
        f"{_kept(last_good)}. Lower the learning rate or enable grad_clip"
    )


def gradient_norm(parameters: list[nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the gradients, dense and sparse (Kim's embedding), as one tensor."""
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


class Trainer:
    """One training run of any task: set-up, the loop, evaluation, logging and checkpoints.

    Args:
        config: the resolved config; its model's card picks the task.
        run_dir: where the config, logs, curves and checkpoints go.
        resume: continue from the newest checkpoint in ``run_dir`` that loads.
        on_checkpoint: called with (step, path) after each ``last`` checkpoint.
        stream: where progress goes (standard error by default).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.config, self.run_dir, self.stream = config, Path(run_dir), stream or sys.stderr
        self.on_checkpoint = on_checkpoint
        self.context, self.device = init_distributed(config.device)
        self._check_setup()
        self._check_run_dir(resume)  # before the data is read: a wrong --out is told at once
        automatic = config.precision == "auto"
        self.config = config = resolve_precision(config, self.device, self._begun_config() if resume else None)
        self.init = read_initial_weights(config.init_from) if config.init_from else None
        if self.init and self.init.model_kwargs:
            # The options the weights were built with (a release's stem pool, say); the user's win.
            self.config = config = replace(config, model_kwargs={**self.init.model_kwargs, **config.model_kwargs})
        task = task_class(task_name_for(config.model))
        task.check_config(config)
        self.task = task(config, self.context, self.device)
        for note in self.task.notes if self.context.is_main else ():
            print(note, file=self.stream)
        self.best_metric = config.best_metric or self.task.default_best_metric
        stop_metric = config.stop_at["metric"] if config.stop_at else None
        for key, metric in (("best_metric", self.best_metric), ("stop_at.metric", stop_metric)):
            if metric is not None and metric not in self.task.eval_columns:
                raise CnnlabError(f"{key} {metric!r} is not one of this task's metrics: "
                                  f"{', '.join(self.task.eval_columns)}")
        self.model = self._build_model()
        # Hybrid: the dense layers are cut to this rank's rows here, before the optimiser sees them.
        self.hybrid = (HybridParallel(self.model, self.context, config.dense_batches)
                       if config.parallel == "hybrid" else None)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.trainable, config.optimizer)
        self.steps_per_epoch = self.task.steps_per_epoch()
        epochs_steps = config.epochs * self.steps_per_epoch
        self.total_steps = min(epochs_steps, config.max_steps or epochs_steps)
        self.schedule = LrSchedule(config.schedule, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        self.step = 0
        self.lr = 0.0
        self.best: dict[str, Any] = {}
        self.evals_since_best = 0
        self.reached = False  # stop_at's target, at the last evaluation
        self.last_path: Path | None = None
        self._prepare_run_dir(resume)
        net = self.hybrid if self.hybrid is not None else wrap_model(self.model, self.context, self.device)
        if automatic and self.context.is_main:
            layout = " + channels_last" if config.channels_last else ""
            print(f"precision auto: {config.precision}{layout} on this {self.device.type}", file=self.stream)
        if config.compile and self.context.is_main:
            print("compiling the model with torch.compile: the first steps take longer (half a minute or more "
                  "on 2 CPU cores)", file=self.stream)
        self.net = torch.compile(net) if config.compile else net

    # ----- set-up -----

    def _check_setup(self) -> None:
        cfg = self.config
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise CnnlabError("precision fp16 needs a GPU (it uses a grad scaler); use bf16 on the CPU")
        if cfg.batch_size % self.context.world_size:
            raise CnnlabError(f"batch_size {cfg.batch_size} must divide evenly over {self.context.world_size} ranks")

    def _build_model(self) -> nn.Module:
        torch.manual_seed(self.config.seed)
        model = self.task.build_model()
        if self.init is not None:
            line = load_initial_weights(model, self.init, self.config.freeze)
            if self.context.is_main:
                print(line, file=self.stream)
        memory_format = torch.channels_last if self.config.channels_last else torch.contiguous_format
        model = model.to(self.device, memory_format=memory_format)
        # Dropout and other in-model randomness: its own stream per rank.
        torch.manual_seed(seed_from(self.config.seed, "model-rng", self.context.rank))
        return model

    def _check_run_dir(self, resume: bool) -> None:
        """A run directory is resumed only when it holds a run, and written only when it holds none."""
        checkpoints = self.run_dir / "checkpoints"
        has_records = checkpoints.is_dir() and any(checkpoints.glob("*.json"))
        if resume and not has_records:
            raise CnnlabError(f"nothing to resume in {self.run_dir}: it holds no checkpoint "
                              "(check --out, or leave out --resume to start a new run)")
        if not resume and has_records:
            raise CnnlabError(
                f"{self.run_dir} already holds a run: pass --resume to continue it or choose another --out"
            )
        if not resume:
            check_run_dir(self.run_dir, RUN_FILES)

    def _begun_config(self) -> dict[str, Any] | None:
        """The config a resumed run recorded when it began (its precision "auto" made
        concrete), or None where config.yaml is missing or unreadable."""
        try:
            begun = yaml.safe_load((self.run_dir / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            return None
        return begun if isinstance(begun, dict) else None

    def _prepare_run_dir(self, resume: bool) -> None:
        found = self._restore_newest(self.run_dir / "checkpoints") if resume else None
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False).encode())
            columns = ("epoch", "step", "lr", *self.task.train_columns, *self.task.eval_columns,
                       f"{self.task.sample_unit}_per_s", "elapsed_s")
            title = f"{self.config.model} on {self.config.dataset}: {self.run_dir.name}"
            self.log = RunLog(self.run_dir, columns, resume_step=self.step, title=title,
                              best_metric=self.best_metric)
            if found is not None:
                print(f"resuming from {found.path} (step {self.step}){self._length_change(found)}", file=self.stream)
        if found is not None:
            self._rederive_best(found)
        self.context.barrier()

    def _restore_newest(self, checkpoints: Path) -> Checkpoint:
        """Restores the newest checkpoint that loads and fits the model; deletes nothing.

        Raises:
            CnnlabError: none does (the run directory is left as it was), or the
                run was trained with other settings.
        """
        candidates = loadable_checkpoints(checkpoints)
        for checkpoint in candidates:
            self._check_config(checkpoint)
            try:
                self._load_state(checkpoint)
            except (RuntimeError, KeyError, ValueError) as err:
                warnings.warn(f"skipping checkpoint {checkpoint.path}: it does not fit the model "
                              f"({str(err).strip().splitlines()[-1].strip()})", stacklevel=2)
                continue
            self.schedule.load_state_dict(checkpoint.meta["schedule"])
            if checkpoint.meta["scaler"]:
                self.scaler.load_state_dict(checkpoint.meta["scaler"])
            restore_rng(checkpoint)
            self.step = checkpoint.step
            self.evals_since_best = checkpoint.meta.get("evals_since_best", 0)
            self.reached = self._reaches(checkpoint.meta["metrics"])
            self.last_path = checkpoint.path
            return checkpoint
        raise CnnlabError(f"no checkpoint in {checkpoints} can be resumed ({len(candidates)} of "
                          f"{len(list(checkpoints.glob('*.json')))} load, none fits the model); nothing was changed")

    def _length_change(self, checkpoint: Checkpoint) -> str:
        """What a resume with another ``epochs`` or ``max_steps`` does to the schedule: it is
        stretched (or shrunk) to the new length, as if the run had been planned that long."""
        saved = checkpoint.meta["config"]
        saved_steps = saved["epochs"] * self.steps_per_epoch
        saved_total = min(saved_steps, saved["max_steps"] or saved_steps)
        if saved_total == self.total_steps:
            return ""
        return (f"; the run is now {self.total_steps} steps long (it was {saved_total}), and its learning-rate "
                f"schedule is stretched to the new length: the rate goes on from "
                f"{self.schedule.factor(self.step) * self.optimizer.param_groups[0]['initial_lr']:.3g}")

    def _load_state(self, checkpoint: Checkpoint) -> None:
        """The model's and the optimiser's state from an ordinary (single-process) checkpoint."""
        optimizer_state = unpack_optimizer(checkpoint)
        if self.hybrid is None:
            self.model.load_state_dict(checkpoint.model_state())
        else:
            self.hybrid.load_full_state_dict(checkpoint.model_state())
            optimizer_state = self.hybrid.local_optimizer_state(optimizer_state, self.optimizer)
        self.optimizer.load_state_dict(optimizer_state)

    def _check_config(self, checkpoint: Checkpoint) -> None:
        saved, current = checkpoint.meta["config"], self.config.to_dict()
        changed = config_changes(saved, current)
        if changed:
            differences = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
            raise CnnlabError(
                f"{checkpoint.path} was trained with different settings ({differences}); "
                "resume with the same recipe and overrides, or start a new run with another --out"
            )

    def _rederive_best(self, resumed: Checkpoint) -> None:
        """``best`` from the checkpoints that exist, not from a record that may be stale: a
        run killed between writing ``last`` and ``best`` writes the ``best`` it owed now."""
        directory = self.run_dir / "checkpoints"
        best = None
        if (directory / "best.json").is_file():
            try:
                best = load_checkpoint(directory / "best.json")
            except (OSError, ValueError) as err:
                warnings.warn(f"best checkpoint unreadable, re-deriving it: {err}", stacklevel=2)
        self.best = ({"metric": self.best_metric, "value": best.meta["metrics"][self.best_metric], "step": best.step}
                     if best is not None and self.best_metric in best.meta["metrics"] else {})
        if resumed.path.stem == "last" and self._improves(resumed.meta["metrics"]):
            self.best = {"metric": self.best_metric, "value": resumed.meta["metrics"][self.best_metric],
                         "step": resumed.step}
            if self.context.is_main:
                save_checkpoint(directory, "best", resumed.tensors, {**resumed.meta, "best": self.best})

    # ----- the loop -----

    def fit(self) -> TrainResult:
        """Trains until ``epochs``, ``max_steps``, early stopping or ``stop_at``; returns how it ended."""
        start = time.perf_counter()
        metrics: dict[str, Any] = {}
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        if self.config.deterministic:  # for this run only: the process gets its setting back
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        try:
            while self.step < self.total_steps and not self._patience_spent() and not self.reached:
                epoch = self.step // self.steps_per_epoch
                train_row, progress = self._train_span(epoch)
                metrics = self._end_span(epoch, train_row, progress, start)
        finally:
            if self.context.is_main:
                self.log.close()
            torch.use_deterministic_algorithms(was_deterministic)
        return TrainResult(self.run_dir, self.step, self.step / self.steps_per_epoch, metrics, self.best,
                           time.perf_counter() - start, self.context.is_main)

    def _reaches(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` holds stop_at's metric at its target (at or below it; at or above it
        for an accuracy)."""
        target = self.config.stop_at
        if target is None or target["metric"] not in row:
            return False
        value = row[target["metric"]]
        return value >= target["value"] if higher_is_better(target["metric"]) else value <= target["value"]

    def _patience_spent(self) -> bool:
        """Early stopping: ``patience`` evaluations in a row without a better best metric."""
        patience = self.config.patience
        return patience is not None and self.evals_since_best >= patience

    def autocast(self) -> contextlib.AbstractContextManager:
        """The run's mixed-precision context (a no-op in fp32)."""
        precision = self.config.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _train_span(self, epoch: int) -> tuple[dict[str, float], Progress]:
        """Trains from the current step to the end of ``epoch`` (or of the run), or to the
        next evaluation due within it (``eval_every_steps``)."""
        cfg, task = self.config, self.task
        first = self.step - epoch * self.steps_per_epoch
        stop = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        every = cfg.eval_every_steps
        if every:
            stop = min(stop, (self.step // every + 1) * every - epoch * self.steps_per_epoch)
        progress = Progress(f"epoch {epoch + 1}/{math.ceil(self.total_steps / self.steps_per_epoch)}",
                            stop - first, task.sample_unit, self.stream)
        self.model.train()
        totals = None
        for i in range(first, stop):
            stats = self._train_step(task.batch(epoch, i), epoch)
            totals = stats if totals is None else totals + stats
            self.step += 1
            if self.context.is_main:
                done = i + 1 - first
                progress.update(done, task.samples(totals), totals[0].item() / done,
                                task.progress_values(totals, done))
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and i + 1 < stop:
                self._checkpoint({})
        steps = stop - first
        row = task.train_row(totals, steps)
        row[f"{task.sample_unit}_per_s"] = round(task.samples(totals) / (time.perf_counter() - progress.start), 1)
        return row, progress

    def _train_step(self, batch: Any, epoch: int) -> torch.Tensor:
        """One optimiser step; returns the batch's statistics summed over ranks."""
        cfg = self.config
        self.lr = self.schedule.apply(self.optimizer, self.step)
        with self.autocast():
            loss, stats = self.task.loss(self.net, batch)
        # Every rank checks the same summed numbers, so all stop together.
        stats = self.context.all_reduce_sum(stats.detach().double())
        stats[0] /= self.context.world_size  # the mean loss over ranks
        check_finite_loss(stats[0].item(), 0.0, self.step + 1, epoch + 1, self.last_path)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.hybrid is not None:
            self.hybrid.sync_gradients()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(self.trainable, cfg.grad_clip)
        else:
            norm = gradient_norm(self.trainable)
        # fp16's grad scaler skips the steps whose gradients overflow: that is its job.
        if not self.scaler.is_enabled():  # summed over ranks: finite only if every rank's is
            norm = self.context.all_reduce_sum(norm.detach().float().reshape(1))
            check_finite_loss(stats[0].item(), norm.item(), self.step + 1, epoch + 1, self.last_path)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.task.after_step(self.model)
        return stats.cpu()

    def _end_span(self, epoch: int, train_row: dict[str, float], progress: Progress, start: float
                  ) -> dict[str, Any]:
        """Evaluates when due (at the end of every ``eval_every``-th epoch, every
        ``eval_every_steps`` steps, and at the end of the run), reports, logs and checkpoints;
        returns the span's row."""
        cfg = self.config
        finished = self.step >= self.total_steps
        row: dict[str, Any] = {"epoch": round(self.step / self.steps_per_epoch, 4), "step": self.step,
                               "lr": self.lr, **train_row}
        epoch_end = self.step % self.steps_per_epoch == 0 and (epoch + 1) % cfg.eval_every == 0
        if epoch_end or finished or (cfg.eval_every_steps and self.step % cfg.eval_every_steps == 0):
            row.update(self.evaluate())
            self.reached = self._reaches(row)
        if self.best_metric in row:  # a U-Net trained on every slice has nothing held out to score
            value = row[self.best_metric]
            self.schedule.observe(1 - value if higher_is_better(self.best_metric) else value)
        row["elapsed_s"] = round(time.perf_counter() - start, 2)
        if self.context.is_main:
            progress.finish(format_metrics(row, self.task.eval_columns))
            self.log.log_epoch(row)
        self._checkpoint(row)
        return row

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The task's evaluation metrics (fractions), then back to training mode."""
        self.model.eval()
        try:
            model = self.model if self.hybrid is None else self.hybrid.evaluation_model()
            return self.task.evaluate(model, self.autocast)
        finally:
            self.model.train()

    # ----- checkpoints -----

    def _improves(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` holds a best metric at least as good as the best so far; a tie
        moves ``best`` to the later evaluation, as Kim's code does."""
        if self.best_metric not in row:
            return False
        if not self.best:
            return True
        value, best = row[self.best_metric], self.best["value"]
        return value >= best if higher_is_better(self.best_metric) else value <= best

    def _checkpoint(self, row: dict[str, Any]) -> None:
        """Writes ``last`` (and ``best`` when the chosen metric improved) from rank 0."""
        improved = self._improves(row)
        if improved:
            self.best = {"metric": self.best_metric, "value": row[self.best_metric], "step": self.step}
            self.evals_since_best = 0
        elif self.best_metric in row:
            self.evals_since_best += 1
        try:  # on every rank, so that all stop together
            check_finite(self.model.state_dict(), f"the weights of {self.run_dir}")
        except NonFiniteTensorsError as err:
            raise NonFiniteLossError(f"{err} at step {self.step}; the run stopped; {_kept(self.last_path)}. "
                                     "Lower the learning rate or enable grad_clip") from None
        if self.context.is_main or self.hybrid is not None:  # hybrid: gathering the shards takes every rank
            tensors, optimizer_meta = self._state()
        if self.context.is_main:
            meta = {"config": self.config.to_dict(), "model": self.task.model_record(), "task": self.task.record(),
                    "classes": self.task.classes, "epoch": self.step / self.steps_per_epoch, "step": self.step,
                    "metrics": row, "world_size": self.context.world_size,
                    "optimizer": optimizer_meta, "schedule": self.schedule.state_dict(),
                    "scaler": self.scaler.state_dict(), "best": self.best,
                    "evals_since_best": self.evals_since_best}
            self.last_path = save_checkpoint(self.run_dir / "checkpoints", "last", tensors, meta)
            if improved:
                save_checkpoint(self.run_dir / "checkpoints", "best", tensors, meta)
            if self.on_checkpoint:
                self.on_checkpoint(self.step, self.last_path)
        self.context.barrier()

    def _state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The tensors and optimiser record of a checkpoint: always the ordinary, whole-model ones."""
        model_state = self.model.state_dict() if self.hybrid is None else self.hybrid.full_state_dict()
        tensors = {f"model.{k}": v for k, v in model_state.items()}
        optimizer_tensors, optimizer_meta = pack_optimizer(self.optimizer)
        if self.hybrid is not None:
            optimizer_tensors = self.hybrid.gather_optimizer_tensors(optimizer_tensors, self.optimizer)
        return {**tensors, **optimizer_tensors, **rng_tensors()}, optimizer_meta


def train(
    config: TrainConfig, run_dir: str | Path, *, resume: bool = False, stream: TextIO | None = None
) -> TrainResult:
    """Runs :class:`Trainer` (see there) and returns how the run ended."""
    return Trainer(config, run_dir, resume=resume, stream=stream).fit()
