"""ResNet-20's bf16 training step under the fast recipe, several ways of running it, side by
side in one process, each as a fraction of the bf16 matrix-multiply peak of the same run.

The step is the trainer's (forward under bf16 autocast with channels_last, the recipe's
loss with label smoothing, backward, the recipe's SGD with Nesterov momentum and weight
decay) on a synthetic batch already in memory, at the batch of
``cnnlab/recipes/resnet_cifar_fast.yaml``. Variants:

- ``eager``: the step as written, no compiler (the baseline every ratio is against);
- ``compile``: ``torch.compile(model)``, as the recipe's ``compile: true`` does today;
- ``compile max-autotune``: ``mode="max-autotune-no-cudagraphs"``, which also benchmarks
  the inductor's own kernels for the matrix work (reported as failed where it fails);
- ``compiled whole step``: ``torch.compile`` of the whole step function (forward, loss,
  backward, update) with compiled autograd (``torch._dynamo.config.compiled_autograd``),
  which traces the backward pass as a graph of its own, so batch norm's and ReLU's
  gradients and the residual additions' accumulations can fuse as the forward's do, and
  the update with them; the profile (``step_profile.md``) puts 56% of the eager step in
  those memory-bound passes;
- ``compile + compiled optimizer``: the SGD update compiled too (one fused pass over the
  parameters instead of the foreach kernels);
- ``compile, batch x2``: twice the recipe's batch, whether larger tensors let the
  compiled kernels run nearer the peak (a schedule change if adopted: the recipe's
  rate was tuned at its own batch).

Each variant is warmed up (compilation happens there; its seconds are printed apart),
then timed over ``--steps`` steps ``--repeats`` times; the median images/s is reported
with its ratio to the first variant timed (eager unless ``--variants`` leaves it out) and
its achieved FLOP/s (images/s x 3 x 2 x multiply-adds per image, as ``throughput.py``
counts a step) as a fraction of the bf16 peak.

    python benchmarks/step_variants.py --threads 2 --steps 10 --repeats 5 --warmup 3
    python benchmarks/step_variants.py --steps 1 --repeats 1 --warmup 1   # checks it runs
"""

from __future__ import annotations

import argparse
import statistics
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo

from cnnlab import create_model, profile
from cnnlab.classify import classification_loss
from cnnlab.train import build_optimizer
from cnnlab.train.config import load_recipe

from bench import add_threads_option, begin, load, timed_runs
from throughput import matmul_peak

RECIPE = load_recipe("resnet_cifar_fast")


# name -> (what is compiled: "nothing", "model", "model and optimizer" or "step"; the model's
# torch.compile options; the batch as a multiple of the recipe's)
VARIANTS: dict[str, tuple[str, dict[str, Any], int]] = {
    "eager": ("nothing", {}, 1),
    "compile": ("model", {}, 1),
    "compile max-autotune": ("model", {"mode": "max-autotune-no-cudagraphs"}, 1),
    "compiled whole step": ("step", {}, 1),
    "compile + compiled optimizer": ("model and optimizer", {}, 1),
    "compile, batch x2": ("model", {}, 2),
}


def make_step(compiled: str, options: dict[str, Any], batch: int) -> Callable[[], None]:
    """One training step of a fresh ResNet-20 (seeded) on a fixed synthetic batch, compiled as asked."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).to(memory_format=torch.channels_last).train()
    net = torch.compile(model, **options) if compiled.startswith("model") else model
    optimizer = build_optimizer(model.parameters(), RECIPE["optimizer"])
    update = torch.compile(optimizer.step) if compiled == "model and optimizer" else optimizer.step
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = classification_loss(net(x), y, label_smoothing=RECIPE["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        update()

    return torch.compile(step) if compiled == "step" else step


def measure(step: Callable[[], None], batch: int, steps: int, repeats: int, warmup: int) -> tuple[float, list[float]]:
    """Seconds of the warm-up, and images/s of each timed run."""
    warm, seconds = timed_runs(step, steps, repeats, warmup)
    return warm, [steps * batch / s for s in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing (compilation happens here)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                        help=f"a subset of: {', '.join(VARIANTS)}")
    add_threads_option(parser)
    args = parser.parse_args()
    begin(args.threads)
    peak = matmul_peak(torch.bfloat16)
    step_flops = 3 * 2 * profile("resnet20", 32, num_classes=10).macs  # per image
    print(f"bf16 matrix-multiply peak: {peak / 1e12:.3f} TFLOP/s; a step costs {step_flops / 1e6:.1f} MFLOP an image")
    print(f"recipe batch {RECIPE['batch_size']}; {args.warmup} warm-up steps, {args.repeats} runs of {args.steps} steps")
    print("| variant | batch | images/s (median) | runs | ratio to the first | TFLOP/s | of bf16 peak | warm-up s |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    baseline = None
    for name in args.variants:
        compiled, options, factor = VARIANTS[name]
        batch = RECIPE["batch_size"] * factor
        torch._dynamo.reset()
        try:
            with torch._dynamo.config.patch(compiled_autograd=compiled == "step"):
                warm, rates = measure(make_step(compiled, options, batch), batch, args.steps, args.repeats,
                                      args.warmup)
        except Exception as error:  # a variant the compiler cannot build here is a result, not an end
            print(f"| {name} | {batch} | failed: {type(error).__name__}: {str(error).splitlines()[0][:120]} "
                  "| | | | | |", flush=True)
            traceback.print_exc(limit=2)
            continue
        median = statistics.median(rates)
        baseline = baseline or median
        achieved = median * step_flops
        print(f"| {name} | {batch} | {median:.1f} | {', '.join(f'{r:.1f}' for r in rates)} | {median / baseline:.2f} "
              f"| {achieved / 1e12:.3f} | {achieved / peak:.1%} | {warm:.1f} |", flush=True)
    print("load average after:", load())


if __name__ == "__main__":
    main()
