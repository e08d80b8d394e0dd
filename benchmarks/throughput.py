"""Training throughput (images/s) of resnet20 and resnet50 under cnnlab's speed options,
and how close it comes to the machine's matrix-multiply peak.

One training step is what the trainer does: forward (under autocast for bf16), the
cross-entropy loss, backward and an SGD step with momentum, on a synthetic batch
already in memory (so the number is the model's, not the data pipeline's). Each
variant is warmed up, then timed over ``--steps`` steps, ``--repeats`` times; the
median is reported with its ratio to fp32 eager measured in the same run.

The peak is a large square matrix multiply in fp32 and in bf16, timed in the same run;
a training step costs about three forward passes (the backward pass computes the
gradients of both the inputs and the weights: twice the forward's multiply-adds), so
the achieved rate is ``images/s x 3 x 2 x MACs per image`` FLOP/s, reported as a
fraction of the peak of the variant's precision.

    python benchmarks/throughput.py --models resnet20 --steps 3 --repeats 3 --warmup 2
    python benchmarks/throughput.py --models resnet50 --steps 1 --repeats 3 --warmup 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnlab import create_model, profile
from cnnlab.classify import classification_loss
from cnnlab.train import build_optimizer

from bench import timed_runs

# (model, image side, batch, classes): the two workloads.
WORKLOADS = (("resnet20", 32, 128, 10), ("resnet50", 224, 32, 1000))
# name -> (channels_last, bf16, compile)
VARIANTS = {
    "fp32": (False, False, False),
    "fp32 + channels_last": (True, False, False),
    "bf16 + channels_last": (True, True, False),
    "bf16 + channels_last + compile": (True, True, True),
}


def matmul_peak(dtype: torch.dtype, side: int = 2048, repeats: int = 5) -> float:
    """The best FLOP/s of ``side x side`` matrix multiplies in ``dtype`` (2 side^3 FLOPs each)."""
    a, b = torch.randn(side, side, dtype=dtype), torch.randn(side, side, dtype=dtype)
    torch.mm(a, b)  # the first call picks and warms the kernel
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - tic)
    return 2 * side**3 / best


def images_per_s(name: str, side: int, batch: int, classes: int, variant: tuple[bool, bool, bool],
                 steps: int, repeats: int, warmup: int) -> list[float]:
    channels_last, bf16, compiled = variant
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, num_classes=classes).to(memory_format=fmt).train()
    net = torch.compile(model) if compiled else model
    optimizer = build_optimizer(model.parameters(), {"name": "sgd", "lr": 0.01, "momentum": 0.9})
    x = torch.randn(batch, 3, side, side).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = classification_loss(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    _, seconds = timed_runs(step, steps, repeats, warmup)
    return [steps * batch / s for s in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=[w[0] for w in WORKLOADS])
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (torch's default if unset)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peaks = {bf16: matmul_peak(torch.bfloat16 if bf16 else torch.float32) for bf16 in (False, True)}
    print(f"matrix-multiply peak: fp32 {peaks[False] / 1e12:.3f} TFLOP/s, bf16 {peaks[True] / 1e12:.3f} TFLOP/s")
    print("| model | batch x size | variant | images/s (median) | runs | ratio to fp32 | TFLOP/s | of peak |")
    print("|---|---|---|---:|---|---:|---:|---:|")
    for name, side, batch, classes in WORKLOADS:
        if name not in args.models:
            continue
        step_flops = 3 * 2 * profile(name, side, num_classes=classes).macs  # per image, see the docstring
        baseline = None
        for label, variant in VARIANTS.items():
            rates = images_per_s(name, side, batch, classes, variant, args.steps, args.repeats, args.warmup)
            median = statistics.median(rates)
            baseline = baseline or median
            runs = ", ".join(f"{r:.1f}" for r in rates)
            achieved = median * step_flops
            print(f"| {name} | {batch} x {side}x{side} | {label} | {median:.1f} | {runs} | {median / baseline:.2f} "
                  f"| {achieved / 1e12:.3f} | {achieved / peaks[variant[1]]:.0%} |", flush=True)


if __name__ == "__main__":
    main()
