"""Dense multi-scale evaluation of a ResNet-20 in fp32 eager, bf16 eager and bf16
compiled, side by side in one process.

Each variant is :func:`cnnlab.evaluate.inference.prepare_for_inference` of the same
weights, run through :func:`cnnlab.evaluate.multiscale_dense` with the paper's scales
scaled to 32-pixel images (``scaled_geometry("multiscale", 32)``: five scales, each with
its mirror) on the first ``--images`` CIFAR-10 test images, ``--batch`` at a time, as
``cnnlab eval RUN --protocol multiscale`` runs them. A first pass warms each variant up
(the compiled one compiles there, once per input size: its time is printed apart); then
``--repeats`` timed passes give the median images/s and its ratio to fp32 eager. The
top-1 accuracy of each variant (with ``--checkpoint``) and its predictions' agreement
with fp32 check that the faster evaluation measures the same thing.

Without ``--checkpoint`` the weights are a random ResNet-20 (the speed is the same; the
accuracy means nothing, the agreement still does).

    CNNLAB_DATA=../shared/data python benchmarks/eval_precision.py --images 1000 --repeats 3 --threads 2 \\
        --checkpoint runs/resnet20-cifar10-TIME
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from cnnlab import create_model
from cnnlab.data import Normalize, load_dataset
from cnnlab.evaluate import multiscale_dense, scaled_geometry
from cnnlab.evaluate.inference import prepare_for_inference
from cnnlab.train import load_checkpoint, load_model
from cnnlab.train.config import input_pipeline

from bench import add_threads_option, begin, load

# name -> (precision, compile)
VARIANTS = {"fp32 eager": ("fp32", False), "bf16 eager": ("bf16", False), "bf16 compiled": ("bf16", True)}
# CIFAR-10's channel statistics, for random weights (a checkpoint brings its run's own).
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def probabilities(run: Callable[[torch.Tensor], torch.Tensor], batches: list[torch.Tensor],
                  geometry: dict[str, Any]) -> torch.Tensor:
    """The multi-scale class probabilities of every image."""
    with torch.inference_mode():
        return torch.cat([multiscale_dense(run, batch, **geometry) for batch in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a resnet20 run, its checkpoints/ folder or a checkpoint .json "
                                             "(default: random weights)")
    parser.add_argument("--data-dir", help="where datasets live (default: $CNNLAB_DATA)")
    parser.add_argument("--images", type=int, default=1000, help="CIFAR-10 test images evaluated")
    parser.add_argument("--batch", type=int, default=256, help="images per forward pass (cnnlab eval's default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant (median reported)")
    add_threads_option(parser)
    args = parser.parse_args()
    begin(args.threads)
    test = load_dataset("cifar10", "test", args.data_dir)
    images, labels = test.images[: args.images].float() / 255, test.labels[: args.images]
    if args.checkpoint:
        checkpoint = load_checkpoint(args.checkpoint)
        meta = checkpoint.meta
        transform = input_pipeline(meta["config"], train=False, normalize=meta.get("task", {}).get("normalize"))
        print(f"weights: {checkpoint.path} (trained in {meta['config']['precision']})")
    else:
        checkpoint, transform = None, Normalize(CIFAR_MEAN, CIFAR_STD)
        print("weights: a random resnet20")
    images = transform(images, None)
    batches = list(images.split(args.batch))
    geometry = scaled_geometry("multiscale", images.shape[-1])
    print(f"{len(images)} images, batches of {args.batch}, scales {geometry['scales']} with mirrors")
    print("| variant | images/s (median) | runs | ratio to fp32 eager | warm-up pass s | top-1 | "
          "predictions as fp32 |")
    print("|---|---:|---|---:|---:|---:|---:|")
    baseline, reference = None, None
    for label, (precision, compiled) in VARIANTS.items():
        torch.manual_seed(0)
        model = load_model(checkpoint) if checkpoint else create_model("resnet20", num_classes=10)
        run = prepare_for_inference(model, "cpu", precision, compile=compiled)
        tic = time.perf_counter()
        probs = probabilities(run, batches, geometry)
        warmup = time.perf_counter() - tic
        rates = []
        for _ in range(args.repeats):
            tic = time.perf_counter()
            probabilities(run, batches, geometry)
            rates.append(len(images) / (time.perf_counter() - tic))
        median = statistics.median(rates)
        baseline = baseline or median
        predictions = probs.argmax(1)
        reference = predictions if reference is None else reference
        top1 = f"{(predictions == labels).float().mean():.2%}" if checkpoint else "-"
        print(f"| {label} | {median:.1f} | {', '.join(f'{r:.1f}' for r in rates)} | {median / baseline:.2f} "
              f"| {warmup:.1f} | {top1} | {(predictions == reference).float().mean():.2%} |", flush=True)
    print("load average after:", load())


if __name__ == "__main__":
    main()
