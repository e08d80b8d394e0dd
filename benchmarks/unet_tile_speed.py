"""Overlap-tile inference speed: one 512x512 ISBI slice through the paper's U-Net.

The paper segments a 512x512 slice "in less than a second" on a 2015 GPU (an NVIDIA
Titan, 6 GB). Here: the full U-Net (width 64, 388 px output tiles, 572 px input
tiles; 2 x 2 tiles with a 384 px step cover 512 px) on the CPU, fp32 as the
baseline and channels_last / bf16 autocast as ratios to it, measured in the same
run. Reports the median of ``--runs`` timed runs after one warm-up run.

    .venv/bin/python benchmarks/unet_tile_speed.py --threads 2 --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time

import torch

from cnnlab import create_model
from cnnlab.segment.tiling import predict_tiled


def _variants(model: torch.nn.Module, device: str) -> dict[str, tuple[torch.nn.Module, object]]:
    channels_last = create_model("unet", width=model.width).to(device).eval()
    channels_last.load_state_dict(model.state_dict())
    channels_last = channels_last.to(memory_format=torch.channels_last)
    bf16 = lambda: torch.autocast(device, dtype=torch.bfloat16)  # noqa: E731
    return {
        "fp32": (model, contextlib.nullcontext),
        "fp32 channels_last": (channels_last, contextlib.nullcontext),
        "bf16 autocast": (model, bf16),
        "bf16 autocast + channels_last": (channels_last, bf16),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--tile", type=int, default=388)
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default="all", help="comma-separated subset of the variant names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("unet", width=args.width).to(args.device).eval()
    image = torch.rand(1, 512, 512)
    variants = _variants(model, args.device)
    if args.variants != "all":
        variants = {k: v for k, v in variants.items() if k in args.variants.split(",")}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
          f"{args.threads} threads, load average before {os.getloadavg()[0]:.1f}")
    print(f"# unet width {args.width}, output tile {args.tile}, 512x512 slice, median of {args.runs} runs\n")
    print("| variant | median s / slice | min s | time ratio to fp32 | max abs. prob. diff to fp32 |")
    print("|---|---|---|---|---|")
    baseline = None
    reference = None
    for name, (net, context) in variants.items():
        times = []
        for run in range(args.runs + 1):  # the first run warms up
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with context():
                out = predict_tiled(net, image, tile=args.tile, batch_size=args.batch_size)
            if args.device == "cuda":
                torch.cuda.synchronize()
            if run:
                times.append(time.perf_counter() - start)
        median = statistics.median(times)
        baseline = baseline or median
        reference = out if reference is None else reference
        drift = (out.softmax(0) - reference.softmax(0)).abs().max().item()
        print(f"| {name} | {median:.3f} | {min(times):.3f} | {median / baseline:.2f} | {drift:.1e} |")
    print(f"\n# load average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
