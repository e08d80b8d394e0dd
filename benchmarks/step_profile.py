"""Where a training step's time goes: convolutions against everything else.

One step as the trainer takes it (forward under autocast, cross-entropy, backward, SGD with
momentum) on a synthetic batch, eager (torch.compile fuses the elementwise work and hides
it from the profiler), profiled with ``torch.profiler`` over ``--steps`` steps after a
warm-up. The operators' own (self) CPU time is summed by kind: convolutions forward and
backward, batch norm, ReLU, the residual additions, the optimizer, copies and layout or
dtype conversions, the rest.

    python benchmarks/step_profile.py --model resnet20 --batch 128 --size 32 --precision bf16 --threads 2
"""

from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from cnnlab import create_model
from cnnlab.classify import classification_loss
from cnnlab.train import build_optimizer

# The operator-name fragments of each kind, first match wins (the names are aten's).
KINDS = (
    ("convolution", ("convolution", "conv2d", "mkldnn_conv")),
    ("batch norm", ("batch_norm",)),
    ("ReLU", ("relu", "threshold", "clamp_min")),  # torch runs an in-place ReLU as clamp_min_
    ("optimizer", ("_foreach", "sgd", "lerp", "addcmul")),
    ("copies and conversions", ("copy_", "to_copy", "_to_dtype", "contiguous", "clone", "empty_like", "fill_",
                                "zero_")),
    ("additions", ("add",)),
    ("pooling and classifier", ("pool", "linear", "addmm", "mm", "softmax", "nll", "cross_entropy")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for kind, parts in KINDS if any(p in lowered for p in parts)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=args.classes).to(memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model.parameters(), {"name": "sgd", "lr": 0.01, "momentum": 0.9})
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss, _ = classification_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    totals: collections.Counter[str] = collections.Counter()
    for event in prof.key_averages():
        totals[kind_of(event.key)] += event.self_cpu_time_total
    whole = sum(totals.values())
    print(f"{args.model}, batch {args.batch} x {args.size}x{args.size}, {args.precision} + channels_last, eager, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}: {whole / args.steps / 1e3:.1f} ms of "
          "operator time a step")
    print("| kind | share of the step's operator time |")
    print("|---|---:|")
    for kind, micros in totals.most_common():
        print(f"| {kind} | {micros / whole:.0%} |")
    print()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
