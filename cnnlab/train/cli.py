"""``cnnlab train`` and ``cnnlab eval``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# Command-line flags that are shortcuts for a config key (``--lr 0.05`` is ``--set optimizer.lr=0.05``).
SHORTCUTS = {
    "dataset": "dataset",
    "data_dir": "data_dir",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "precision": "precision",
    "seed": "seed",
    "device": "device",
}


def _overrides(args: argparse.Namespace) -> list[str]:
    pairs = [f"{key}={getattr(args, flag)}" for flag, key in SHORTCUTS.items() if getattr(args, flag) is not None]
    pairs += [f"{flag}=true" for flag in ("channels_last", "compile", "deterministic") if getattr(args, flag)]
    return pairs + list(args.set)


def _default_run_dir(model: str, dataset: str) -> Path:
    safe_dataset = dataset.replace(":", "_").replace("/", "_")
    return Path("runs") / f"{model}-{safe_dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train(args: argparse.Namespace) -> int:
    from cnnlab.train.config import resolve_config
    from cnnlab.train.distributed import shutdown
    from cnnlab.train.loop import train

    config = resolve_config(args.model, args.recipe, _overrides(args))
    if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("pass --out under torchrun, so that every rank uses the same run directory")
    run_dir = Path(args.out) if args.out else _default_run_dir(config.model, config.dataset)
    try:
        result = train(config, run_dir, resume=args.resume)
    finally:
        shutdown()
    metrics = result.metrics
    if not result.is_main:
        return 0
    if "test_top1_err" in metrics:
        print(f"{config.model} on {config.dataset}: test accuracy {100 - metrics['test_top1_err']:.2f}% "
              f"(top-1 error {metrics['test_top1_err']:.2f}%, top-5 error {metrics['test_top5_err']:.2f}%) "
              f"after {result.epoch:g} epochs, {result.step} steps, {result.elapsed_s:.0f} s")
    print(f"run directory: {result.run_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from cnnlab.train.evaluation import evaluate_checkpoints

    result = evaluate_checkpoints([args.checkpoint, *args.ensemble], args.dataset, protocol=args.protocol,
                                  data_dir=args.data_dir, batch_size=args.batch_size, device=args.device)
    members = f"ensemble of {1 + len(args.ensemble)}" if args.ensemble else str(args.checkpoint)
    print(f"{members} on {args.dataset} test ({result['n']} images, {args.protocol}): "
          f"top-1 error {100 * result['top1_err']:.2f}%, top-5 error {100 * result['top5_err']:.2f}% "
          f"(top-1 accuracy {100 * result['top1']:.2f}%)")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``train`` and ``eval`` to the ``cnnlab`` parser."""
    p = subparsers.add_parser("train", help="train a model on a dataset (resumable, distributed under torchrun)")
    p.add_argument("model", help="a registered model, e.g. resnet20 (see `cnnlab models`)")
    p.add_argument("--dataset", help="digits, mnist, fashion-mnist, cifar10, cifar100 or folder:PATH")
    p.add_argument("--recipe", help="a YAML recipe, e.g. recipes/resnet_cifar.yaml")
    p.add_argument("--data-dir", help="where datasets live (default: $CNNLAB_DATA or ~/.cache/cnnlab)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many iterations")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action="store_true", help="NHWC activations")
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels only")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", help="run directory (default: runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out that loads")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, YAML value, dotted into mappings: --set optimizer.nesterov=true")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("eval", help="evaluate checkpoints with a paper's test protocol")
    p.add_argument("checkpoint", help="a checkpoint .json, its checkpoints/ folder or a run directory")
    p.add_argument("--dataset", required=True, help="dataset whose test split to use")
    p.add_argument("--protocol", default="center", choices=("center", "10crop", "144crop", "multiscale"))
    p.add_argument("--ensemble", nargs="+", default=[], metavar="CKPT", help="more checkpoints; softmax averaged")
    p.add_argument("--data-dir", help="where datasets live")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=_eval)
