"""How long `cnnlab.profile` takes on the meta device, against one real forward pass.

The goal (issue 2): the 115M-parameter SENet-154 profiles in under 2 s without
allocating weights. The baseline, measured in the same run, is building the model
with real weights and running one CPU forward pass at the same input size: what
counting by execution would cost.

    .venv/bin/python benchmarks/profile_speed.py [--runs 5] [--models senet154 resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cnnlab
from cnnlab.hardware import machine


def _median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _real_forward(name: str) -> None:
    model = cnnlab.create_model(name).eval()
    size = cnnlab.model_card(name).input_size
    with torch.no_grad():
        model(torch.randn(1, model.in_chans, size, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["senet154", "resnet50", "resnet1202"])
    args = parser.parse_args()
    cnnlab.list_models()  # import the families once, outside the timings
    print(f"machine: {machine()}, {torch.get_num_threads()} torch threads")
    print("| model | params | profile (meta), median s | build + 1 real forward, median s | ratio |")
    print("|---|---|---|---|---|")
    for name in args.models:
        meta = _median_seconds(lambda: cnnlab.profile(name), args.runs)
        real = _median_seconds(lambda: _real_forward(name), max(1, args.runs // 2))
        params = cnnlab.profile(name).params
        print(f"| {name} | {params / 1e6:.1f}M | {meta:.2f} | {real:.2f} | {real / meta:.1f}x |")


if __name__ == "__main__":
    main()
