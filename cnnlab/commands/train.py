"""``cnnlab train``, ``cnnlab eval`` and ``cnnlab predict``: one convention for every task.

Options are typed by argparse and go straight into the config (``--lr 5e-5`` is the
float 5e-05); only ``--set KEY=VALUE`` is parsed as YAML. Every run writes to
``runs/<model>-<dataset>-<time>`` unless ``--out`` says otherwise, and a directory
that holds a run is never written over without ``--resume``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from cnnlab.data.registry import DATASET_NAMES
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.protocols import PROTOCOLS
from cnnlab.models.textcnn import VARIANTS
from cnnlab.text.datasets import DATASETS as TEXT_DATASETS
from cnnlab.text.datasets import TOKENIZERS
from cnnlab.text.task import BATCHINGS
from cnnlab.train.config import PARALLELS, PRECISIONS
from cnnlab.train.finetune import FREEZABLE
from cnnlab.train.monitor import format_metric, format_metrics
from cnnlab.train.task import Task, higher_is_better, task_class, task_name_for

DEVICES = ("auto", "cpu", "cuda")
# What `cnnlab eval` and `cnnlab predict` options are when not given (the others: None).
OPTION_DEFAULTS = {"protocol": "center", "precision": "auto", "device": "auto", "format": "png", "out": ".",
                   "allow_nonfinite": False, "ensemble": []}
# Inference precision (cnnlab.evaluate.inference.eval_precision): bf16 where the processor has it.
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16")
_PRECISION_HELP = ("U-Net: auto (bf16 autocast + channels_last on CPUs and GPUs with bf16 arithmetic, else fp32), "
                   "fp32 or bf16")
_TILE_HELP = ("U-Net: output tile side of the overlap-tile inference (default: the run's task.eval_tile if it "
              "set one, else chosen per image: one tile for a 512x512 slice, the fewest that fit the memory budget "
              "for large images)")
# Command-line options that are shortcuts for a config key (``--lr 0.05`` is ``optimizer.lr``).
SHORTCUTS = {
    "dataset": "dataset",
    "data_dir": "data_dir",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "lr": "optimizer.lr",
    "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay",
    "precision": "precision",
    "seed": "seed",
    "device": "device",
    "patience": "patience",
    "folds": "folds",
    "variant": "model_kwargs.variant",
    "width": "model_kwargs.width",
    "vectors": "task.vectors",
    "batching": "task.batching",
    "tokenize": "task.tokenize",
    "tile": "task.tile",
    "init_from": "init_from",
    "parallel": "parallel",
    "freeze": "freeze",
}
# Switches that set a config key to a fixed value.
SWITCHES = {
    "channels_last": ("channels_last", True),
    "compile": ("compile", True),
    "deterministic": ("deterministic", True),
    "no_weight_map": ("task.weight_map", False),
    "no_elastic": ("task.elastic", False),
}


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    flags = {key: getattr(args, name) for name, key in SHORTCUTS.items() if getattr(args, name) is not None}
    flags.update(setting for name, setting in SWITCHES.items() if getattr(args, name))
    return flags


def default_run_dir(model: str, dataset: str) -> Path:
    """``runs/<model>-<dataset>-<time>``: the default ``--out`` of every training command."""
    folder = dataset.startswith("folder:")
    safe_dataset = f"folder_{Path(dataset.removeprefix('folder:')).name}" if folder else dataset.replace(":", "_")
    return Path("runs") / f"{model}-{safe_dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def _train(args: argparse.Namespace) -> int:
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.config import resolve_config
    from cnnlab.train.crossval import cross_validate
    from cnnlab.train.distributed import shutdown
    from cnnlab.train.loop import train

    config = resolve_config(args.model, args.recipe, list(args.set), _flags(args))
    if not args.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CnnlabError("pass --out under torchrun, so that every rank uses the same run directory")
    run_dir = Path(args.out) if args.out else default_run_dir(config.model, config.dataset)
    if config.folds > 1:
        summary = cross_validate(config, run_dir, resume=args.resume, first_fold=args.first_fold,
                                 max_folds=args.max_folds)
        std = summary["std"]
        print(f"{config.model} on {config.dataset} ({summary['protocol']}), mean over folds: " + ", ".join(
            f"{k} {format_metric(k, v)}" + (f" +- {format_metric(k, std[k])}" if k in std else "")
            for k, v in summary["mean"].items() if not k.endswith("loss")))
        print(f"run directory: {run_dir}")
        return 0
    try:
        result = train(config, run_dir, resume=args.resume)
    finally:
        shutdown()
    if not result.is_main:
        return 0
    metrics = result.metrics
    length = f"after {result.step} steps ({result.epoch:.3g} epochs), {result.elapsed_s:.0f} s"
    if "test_top1_err" in metrics:
        top5 = f", top-5 error {100 * metrics['test_top5_err']:.2f}%" if "test_top5_err" in metrics else ""
        print(f"{config.model} on {config.dataset}: test accuracy {100 * (1 - metrics['test_top1_err']):.2f}% "
              f"(top-1 error {100 * metrics['test_top1_err']:.2f}%{top5}) {length}")
    if result.best and ("test_top1_err" not in metrics or result.best["step"] != result.step):
        # The best checkpoint's metrics: what `cnnlab eval` of the run evaluates again.
        best = load_checkpoint(result.run_dir / "checkpoints" / "best.json").meta["metrics"]
        print(f"{config.model} on {config.dataset}: best {result.best['metric']} at step {result.best['step']} "
              f"(the checkpoint `cnnlab eval` takes)"
              f"{format_metrics(best, task_class(task_name_for(config.model)).eval_columns)} ({length})")
    print(f"run directory: {result.run_dir}")
    return 0


def _checkpoints_of(path: str) -> list[Path]:
    """The checkpoint(s) a path names: a checkpoint, a run, or each fold of a cross-validation."""
    root = Path(path)
    folds = sorted(root.glob("fold-*"), key=lambda p: int(p.name.split("-")[1])) if root.is_dir() else []
    if folds and not (root / "checkpoints").is_dir():
        return folds
    return [root]


def _refuse_unused(task: type[Task], used: tuple[str, ...], options: dict[str, Any], command: str) -> None:
    """A given option the task does not read is refused in one line, not silently ignored."""
    unused = [k for k, v in options.items() if k not in used and v is not None and v != OPTION_DEFAULTS.get(k)]
    if unused:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in unused)
        raise CnnlabError(f"{names}: not an option of `cnnlab {command}` for a {task.name} model; leave it out")


def _eval(args: argparse.Namespace) -> int:
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.task import task_of

    if args.batch_size is not None and args.batch_size < 1:
        raise CnnlabError(f"--batch-size must be a positive integer, got {args.batch_size}")
    options = {"dataset": args.dataset, "protocol": args.protocol, "data_dir": args.data_dir,
               "batch_size": args.batch_size, "device": args.device, "tile": args.tile,
               "precision": args.precision, "allow_nonfinite": args.allow_nonfinite}
    for path in _checkpoints_of(args.checkpoint):
        checkpoints = [load_checkpoint(p) for p in [path, *args.ensemble]]
        task = task_of(checkpoints[0])
        _refuse_unused(task, task.eval_options, {**options, "ensemble": args.ensemble}, "eval")
        print(task.evaluate_checkpoints(checkpoints, options), flush=True)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.train.task import task_of

    if args.batch_size is not None and args.batch_size < 1:
        raise CnnlabError(f"--batch-size must be a positive integer, got {args.batch_size}")
    options = {"out": args.out, "tile": args.tile, "batch_size": args.batch_size, "format": args.format,
               "labels": args.labels, "precision": args.precision, "allow_nonfinite": args.allow_nonfinite}
    checkpoints = [load_checkpoint(p) for p in _checkpoints_of(args.checkpoint)]
    checkpoint = checkpoints[0]
    if len(checkpoints) > 1:
        # A cross-validation predicts with one model, not an ensemble, so that its output is
        # what `cnnlab eval` reports for that model: the fold with the best validation metric.
        metric = checkpoint.meta["best"]["metric"]
        checkpoint = (max if higher_is_better(metric) else min)(checkpoints, key=lambda c: c.meta["best"]["value"])
        print(f"cross-validation: predicting with {checkpoint.path}, the best of {len(checkpoints)} folds by "
              f"{metric} ({format_metric(metric, checkpoint.meta['best']['value'])})", file=sys.stderr)
    task = task_of(checkpoint)
    _refuse_unused(task, task.predict_options, options, "predict")
    for line in task.predict(checkpoint, args.inputs, options):
        print(line, flush=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    from cnnlab.train.export import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.format, args.out))
    return 0


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``cnnlab train``."""
    p.add_argument("model", help="a registered model, e.g. resnet20, textcnn, unet (see `cnnlab models`)")
    p.add_argument("--dataset", help=f"images: {', '.join(DATASET_NAMES)}; sentences: {', '.join(TEXT_DATASETS)}; "
                                     "slices: isbi2012")
    p.add_argument("--recipe", help="a YAML recipe: a path or a shipped recipe's name, e.g. resnet_cifar")
    p.add_argument("--data-dir", help="where datasets live (default: $CNNLAB_DATA, else ~/.cache/cnnlab)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many iterations")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--lr", type=float, help="base learning rate")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--precision", choices=PRECISIONS,
                   help="auto (default): bf16 autocast + channels_last where the device computes bf16 natively, "
                        "else fp32")
    p.add_argument("--channels-last", action="store_true", help="NHWC activations")
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels only")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=DEVICES)
    p.add_argument("--parallel", choices=PARALLELS,
                   help="under torchrun: ddp (default) or hybrid (AlexNet's model-parallel dense layers)")
    p.add_argument("--patience", type=int, help="stop after this many evaluations without a better best metric")
    p.add_argument("--folds", type=int, help="k-fold cross-validation, one run per fold in OUT/fold-K")
    p.add_argument("--first-fold", type=int, default=1, help="start at this fold (1-based), to split a long CV")
    p.add_argument("--max-folds", type=int, help="run at most this many folds")
    p.add_argument("--init-from", metavar="WEIGHTS",
                   help="fine-tune: start from a cnnlab run or checkpoint, or a `cnnlab convert` folder")
    p.add_argument("--freeze", choices=FREEZABLE, help="features: train the classifier only")
    p.add_argument("--out", help="run directory (default: runs/MODEL-DATASET-TIME)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out that loads")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key, YAML value, dotted into mappings: --set optimizer.nesterov=true")
    text = p.add_argument_group("Kim's CNN (textcnn)")
    text.add_argument("--variant", choices=VARIANTS)
    text.add_argument("--vectors", help="pre-trained vectors, word2vec text or binary format")
    text.add_argument("--batching", choices=BATCHINGS,
                      help="shuffle: reshuffle every epoch (default); kim: Kim's code's fixed batches, in a new order")
    text.add_argument("--tokenize", choices=TOKENIZERS,
                      help="kim: re-tokenise as Kim's code does (default); split: the files' own tokens")
    seg = p.add_argument_group("U-Net (unet)")
    seg.add_argument("--tile", type=int, help="output side of a training tile (388 as the paper: input 572)")
    seg.add_argument("--width", type=int, help="channels of the first level (64 as the paper)")
    seg.add_argument("--no-weight-map", action="store_true", help="unweighted cross-entropy (ablation)")
    seg.add_argument("--no-elastic", action="store_true",
                     help="no augmentation: no elastic deformation, shift, rotation or grey-value change (ablation)")
    p.set_defaults(func=_train)


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``cnnlab predict``."""
    p.add_argument("checkpoint", help="a run directory (or a `cnnlab convert` folder), its checkpoints/ "
                                      "folder or a checkpoint .json")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files (classifiers, U-Net) or sentences in quotes (textcnn)")
    p.add_argument("--out", default=OPTION_DEFAULTS["out"], help="U-Net: the folder for probability maps and overlays")
    p.add_argument("--tile", type=int, help=_TILE_HELP)
    p.add_argument("--batch-size", type=int,
                   help="U-Net: tiles per forward pass (default: as many as fit the memory budget; 4 with --tile)")
    p.add_argument("--precision", default=OPTION_DEFAULTS["precision"], choices=INFERENCE_PRECISIONS, help=_PRECISION_HELP)
    p.add_argument("--format", choices=("png", "npy"), default=OPTION_DEFAULTS["format"],
                   help="U-Net: probability map as a 16-bit PNG or a float32 .npy")
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="U-Net: the true label of each image (white = cell), drawn in green on the overlay")
    p.add_argument("--allow-nonfinite", action="store_true", help="load weights holding NaN or Inf (forensics)")
    p.set_defaults(func=_predict)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``train``, ``eval`` and ``predict`` to the ``cnnlab`` parser."""
    add_train_arguments(subparsers.add_parser(
        "train", help="train any model: classifiers, textcnn, unet (resumable, distributed under torchrun)"))

    p = subparsers.add_parser("eval", help="evaluate a run or checkpoints with the task's metrics and protocols")
    p.add_argument("checkpoint", help="a run directory (each fold of a cross-validation; or a `cnnlab convert` "
                                      "folder), its checkpoints/ or a .json")
    p.add_argument("--dataset", help="classifiers: the dataset whose test split to use (default: the run's)")
    p.add_argument("--protocol", default=OPTION_DEFAULTS["protocol"], choices=tuple(PROTOCOLS),
                   help="classifiers: the test protocol")
    p.add_argument("--ensemble", nargs="+", default=[], metavar="CKPT",
                   help="classifiers: more checkpoints; softmax averaged")
    p.add_argument("--data-dir", help="where datasets live")
    p.add_argument("--batch-size", type=int,
                   help="images (256) or U-Net tiles (as many as fit the memory budget; 4 with --tile) per pass")
    p.add_argument("--tile", type=int, help=_TILE_HELP)
    p.add_argument("--precision", default=OPTION_DEFAULTS["precision"], choices=INFERENCE_PRECISIONS, help=_PRECISION_HELP)
    p.add_argument("--device", default=OPTION_DEFAULTS["device"], choices=DEVICES)
    p.add_argument("--allow-nonfinite", action="store_true", help="load weights holding NaN or Inf (forensics)")
    p.set_defaults(func=_eval)

    add_predict_arguments(subparsers.add_parser(
        "predict", help="predict: an image's top-5 classes, a sentence's class, a slice's membrane map"))

    p = subparsers.add_parser(
        "export", help="export a trained model: torch.export (.pt2) or ONNX, checked against eager")
    p.add_argument("checkpoint", help="a run directory, its checkpoints/ folder or a checkpoint .json")
    p.add_argument("--format", default="pt2", choices=("pt2", "onnx"))
    p.add_argument("--out", required=True, help="the file to write (.pt2 or .onnx)")
    p.set_defaults(func=_export)
