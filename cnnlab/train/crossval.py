"""k-fold cross-validation: a thin loop that runs the one Trainer once per fold.

Each fold is an ordinary run directory, ``RUN/fold-K`` (K from 1), so a killed
cross-validation resumes at the fold, and the step, where it stopped. When every
chosen fold is done, ``RUN/results.json`` gathers each fold's ``best`` metrics and
history, and the mean and standard deviation of every metric over the folds
(fractions, as everywhere in the files cnnlab writes).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.checkpoint import load_checkpoint, resolve_checkpoint_path
from cnnlab.files import atomic_write, read_metrics
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import Trainer, check_run_dir


def fold_dir(run_dir: Path, fold: int) -> Path:
    """The run directory of fold ``fold`` (1-based)."""
    return run_dir / f"fold-{fold}"


def _fold_result(directory: Path, fold: int) -> dict[str, Any]:
    """A fold's best checkpoint's metrics and its per-epoch history."""
    best = load_checkpoint(resolve_checkpoint_path(directory))
    history = read_metrics(directory / "metrics.csv")
    return {"fold": fold, "run_dir": str(directory), "best_step": best.step,
            "best_epoch": round(best.meta["epoch"], 4), **best.meta["metrics"], "history": history}


def cross_validate(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    first_fold: int = 1,
    max_folds: int | None = None,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Runs folds ``first_fold`` .. of ``config.folds`` (at most ``max_folds``) and summarises them.

    Args:
        config: the run's config with ``folds`` > 1.
        run_dir: the cross-validation's directory; each fold trains in ``fold-K``.
        resume: continue the folds that have checkpoints; folds without start afresh.
        first_fold: the first fold to run (1-based), so a long cross-validation can be
            split over several processes.
        max_folds: run at most this many folds.
        stream: where progress goes.

    Returns:
        The summary that is also written to ``results.json``.
    """
    if config.folds < 2:
        raise CnnlabError(f"cross-validation needs folds >= 2, got {config.folds}")
    if not 1 <= first_fold <= config.folds:
        raise CnnlabError(f"first fold must lie in 1..{config.folds}, got {first_fold}")
    run_dir, stream = Path(run_dir), stream or sys.stderr
    if not resume:
        check_run_dir(run_dir, ("results.json", "fold-*"))
    chosen = list(range(first_fold, config.folds + 1))[: max_folds or config.folds]
    results = []
    for fold in chosen:
        directory = fold_dir(run_dir, fold)
        print(f"fold {fold} of {config.folds}: {directory}", file=stream, flush=True)
        has_run = (directory / "checkpoints").is_dir() and any((directory / "checkpoints").glob("*.json"))
        Trainer(replace(config, fold=fold), directory, resume=resume and has_run, stream=stream).fit()
        results.append(_fold_result(directory, fold))
    metrics = sorted({k for r in results for k in r} - {"fold", "run_dir", "best_step", "best_epoch", "history",
                                                         "epoch", "step", "lr", "elapsed_s"})
    values = {k: np.array([r[k] for r in results if isinstance(r.get(k), (int, float))]) for k in metrics}
    summary = {
        "model": config.model, "dataset": config.dataset, "folds_total": config.folds,
        "protocol": (f"fold {chosen[0]} of {config.folds} (CV)" if len(chosen) == 1
                     else f"folds {chosen[0]}-{chosen[-1]} of {config.folds} (CV)"),
        "config": config.to_dict(),
        "mean": {k: float(v.mean()) for k, v in values.items() if len(v)},
        "std": {k: float(v.std(ddof=1)) for k, v in values.items() if len(v) > 1},
        "folds": results,
    }
    atomic_write(run_dir / "results.json", json.dumps(summary, indent=1).encode())
    return summary
