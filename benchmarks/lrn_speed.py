"""The across-channel LRN window: a running sum over the channels against the 3-D pool
it replaced, side by side in one process.

Both layers compute AlexNet's section 3.3 normalisation with the paper's constants; they
differ only in how each position's sum of squares over n adjacent channels is formed.
The baseline (:class:`PooledWindowLRN`, kept here only as the baseline) pools the
zero-padded squares with ``avg_pool3d`` over the channel axis, as ``cnnlab/layers/lrn.py``
did before; :class:`cnnlab.layers.LocalResponseNorm` takes the difference of two running
sums n channels apart. Each is timed forward and backward (the gradient of the sum of the
outputs) on the activations the AlexNet-style four-layer CIFAR net (``alexnet_cifar``,
four case studies train it) normalises: after conv1's and conv2's pools, 32 channels of
16x16 and 8x8, at the recipe's batch of 128, channels_last, in bf16 (the training
precision where the CPU has it) and in fp32. The medians of ``--repeats`` timed runs of
``--steps`` passes each are printed with the ratio old / new.

    python benchmarks/lrn_speed.py --steps 20 --repeats 7 --threads 2
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from cnnlab.layers import LocalResponseNorm

from bench import add_threads_option, begin, load, timed_runs

# alexnet_cifar's two LRN inputs (recipes/alexnet_cifar.yaml's batch): (N, C, H, W).
SHAPES = ((128, 32, 16, 16), (128, 32, 8, 8))
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


class PooledWindowLRN(LocalResponseNorm):
    """The baseline: the across-channel window as a 3-D average pool of the padded squares, times n."""

    def window_sum(self, squares: torch.Tensor) -> torch.Tensor:
        half = self.size // 2
        stacked = squares.unflatten(1, (self.groups, -1))
        pooled = F.avg_pool3d(F.pad(stacked, (0, 0, 0, 0, half, half)), (self.size, 1, 1), stride=1)
        return pooled.flatten(1, 2) * self.size


def seconds_per_pass(layer: torch.nn.Module, x: torch.Tensor, steps: int, repeats: int) -> list[float]:
    """Seconds of one forward + backward pass, one figure per timed run of ``steps`` passes."""

    def step() -> None:
        layer(x).sum().backward()
        x.grad = None

    _, seconds = timed_runs(step, steps, repeats, warmup=3)
    return [s / steps for s in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="passes per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per layer (median reported)")
    add_threads_option(parser)
    args = parser.parse_args()
    begin(args.threads)
    print("| input (N, C, H, W) | dtype | 3-D pool ms (median; runs) | running sum ms (median; runs) "
          "| ratio pool / running sum |")
    print("|---|---|---|---|---:|")
    torch.manual_seed(0)
    for shape in SHAPES:
        for label, dtype in DTYPES.items():
            x = torch.relu(torch.randn(shape)).to(dtype).contiguous(memory_format=torch.channels_last)
            x.requires_grad_()
            medians = []
            cells = []
            for layer in (PooledWindowLRN(), LocalResponseNorm()):
                times = seconds_per_pass(layer, x, args.steps, args.repeats)
                medians.append(statistics.median(times))
                cells.append(f"{medians[-1] * 1e3:.3f}; " + ", ".join(f"{t * 1e3:.3f}" for t in times))
            print(f"| {shape} | {label} | {cells[0]} | {cells[1]} | {medians[0] / medians[1]:.2f} |", flush=True)
    print("load average after:", load())


if __name__ == "__main__":
    main()
