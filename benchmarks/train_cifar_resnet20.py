"""resnet20 on CIFAR-10 (the JPEG copy in ../shared/data/cifar10-jpg) with the paper's
recipe compressed to a wall-time budget.

He et al. (2016) train 64k iterations of batch 128 (164 epochs) and report 8.75% test
error (91.25% accuracy). Here the same recipe (recipes/resnet_cifar.yaml: SGD lr 0.1,
momentum 0.9, weight decay 1e-4, batch 128, random crop + flip) runs for as many
iterations as fit the budget, with the two divide-by-10 milestones kept at the same
fractions of the run (50% and 75%, as 32k and 48k are of 64k), bf16 autocast and
channels_last. A short calibration run measures the speed first.

    CNNLAB_DATA=../shared/data python benchmarks/train_cifar_resnet20.py --budget-min 25
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from cnnlab.train import Trainer
from cnnlab.train.config import resolve_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=25.0, help="wall-time budget, minutes")
    parser.add_argument("--calibrate-steps", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "runs" / f"bench-cifar-resnet20-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    overrides = ["precision=bf16", "channels_last=true", "epochs=200"]
    if args.data_dir:
        overrides.append(f"data_dir={args.data_dir}")

    # Time the steps between two mid-run checkpoints, so set-up and the final test
    # pass do not count.
    every = args.calibrate_steps // 3
    calibration = resolve_config("resnet20", "resnet_cifar",
                                 overrides + [f"max_steps={args.calibrate_steps}", f"checkpoint_every={every}"])
    marks: list[float] = []
    scratch = Path(tempfile.mkdtemp())
    Trainer(calibration, scratch / "run", stream=sys.stderr, on_checkpoint=lambda *_: marks.append(time.perf_counter())).fit()
    step_s = (marks[1] - marks[0]) / every
    shutil.rmtree(scratch)

    # Keep 15% of the remaining budget for the per-epoch test passes, set-up and noise.
    remaining = args.budget_min * 60 - (time.perf_counter() - start)
    steps = max(int(0.85 * remaining / step_s), 100)
    milestones = [steps // 2, steps * 3 // 4]
    config = resolve_config("resnet20", "resnet_cifar", overrides + [
        f"max_steps={steps}", f"schedule.milestones={milestones}"])
    print(f"calibration: {step_s:.3f} s/step ({128 / step_s:.0f} img/s); training {steps} steps "
          f"({steps * 128 / 50000:.1f} epochs), milestones {milestones}", flush=True)
    result = Trainer(config, args.out, stream=sys.stderr).fit()
    summary = {
        "steps": result.step, "epochs": round(result.epoch, 2), "milestones": milestones,
        "test_top1_err": result.metrics.get("test_top1_err"), "test_accuracy": 100 - result.metrics["test_top1_err"],
        "train_wall_s": round(result.elapsed_s, 1), "total_wall_s": round(time.perf_counter() - start, 1),
        "calibration_s_per_step": round(step_s, 4), "threads": torch.get_num_threads(), "run_dir": str(result.run_dir),
    }
    print(json.dumps(summary, indent=1))
    (Path(args.out) / "benchmark.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
