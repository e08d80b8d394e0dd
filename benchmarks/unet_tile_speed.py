"""Overlap-tile inference speed: one 512x512 ISBI slice through the paper's U-Net.

The paper segments a 512x512 slice "in less than a second" on a 2015 GPU (an NVIDIA
Titan, 6 GB). Here, on the CPU, the full U-Net (width 64) in one run, four ways:

- old tiling: the paper's 388 px output tiles (572 px input), 2 x 2 tiles with a
  384 px step, 4 per forward pass;
- new tiling: ``tile=None``, the per-image choice of ``cnnlab.segment.tiling.choose_tile``
  (one 516 px output tile from a 700 px input for a 512x512 slice);

each in fp32 and in bf16 autocast with channels_last batches (``precision="fp32"`` and
``"bf16"`` of ``predict_tiled``, the code ``cnnlab predict`` runs). Reports the median,
minimum and maximum of ``--runs`` timed runs after one warm-up run per variant, the
time ratio to old-tiling fp32 measured in the same run, the multiply-adds per slice
(counted with torch.utils.flop_counter on the meta device), and the largest absolute
difference of the cell probabilities: bf16 against fp32 of the same tiling, and new
against old tiling in fp32 (stitching is exact: rounding only).

    .venv/bin/python benchmarks/unet_tile_speed.py --threads 2 --runs 5

``--width 4 --runs 1`` checks the script in seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnlab import create_model
from cnnlab.segment.tiling import choose_tile, inference_precision, predict_tiled

TILINGS = {"old": 388, "new": None}  # output tile: the paper's, and the automatic choice
PRECISIONS = ("fp32", "bf16")
FLAGS = ("avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def machine() -> str:
    """The processor's model name and its AVX-512 / bf16 / AMX flags, as lscpu reports them."""
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    model = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    have = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in FLAGS)
    return f"{model}; {os.cpu_count()} CPUs; {have}"


def multiply_adds(width: int, tile: int | None) -> float:
    """Multiply-adds of one 512x512 slice, counted on the meta device."""
    with torch.device("meta"):
        model = create_model("unet", width=width).eval()
        image = torch.empty(1, 512, 512)
    with FlopCounterMode(display=False) as counter:
        predict_tiled(model, image, tile=tile, precision=None)
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant, after one warm-up run")
    parser.add_argument("--width", type=int, default=64, help="channels of the first level (64 as the paper)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default="all",
                        help="comma-separated subset of old-fp32, old-bf16, new-fp32, new-bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("unet", width=args.width).to(args.device).eval()
    image = torch.rand(1, 512, 512)
    variants = [(tiling, precision) for tiling in TILINGS for precision in PRECISIONS]
    if args.variants != "all":
        variants = [v for v in variants if "-".join(v) in args.variants.split(",")]
    with torch.device("meta"):
        meta = create_model("unet", width=args.width)
    new_tile = choose_tile(meta, 512, 512)
    print(f"# {machine()}")
    print(f"# torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, device "
          f"{args.device}, {args.threads} threads; precision='auto' here is {inference_precision(args.device)}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# load average before {load} (1, 5, 15 min); {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# unet width {args.width}, one 512x512 slice; old tiling: 388 px output tiles (input 572), "
          f"{multiply_adds(args.width, 388) / 1e9:.1f} G multiply-adds; new tiling: {new_tile[0]} x {new_tile[1]} px "
          f"(input {meta.input_size_for(new_tile[0])}), {multiply_adds(args.width, None) / 1e9:.1f} G multiply-adds")
    print(f"# median, min and max of {args.runs} timed runs after 1 warm-up run per variant\n")
    print("| tiling | precision | median s / slice | min s | max s | time ratio to old fp32 |")
    print("|---|---|---|---|---|---|")
    probs = {}
    baseline = None
    weights = model.state_dict()
    for tiling, precision in variants:
        # A fresh model each time: bf16 puts the weights in channels_last, fp32 takes them as built.
        model = create_model("unet", width=args.width).to(args.device).eval()
        model.load_state_dict(weights)
        times = []
        for run in range(args.runs + 1):  # the first run warms up
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = predict_tiled(model, image, tile=TILINGS[tiling], precision=precision)
            if args.device == "cuda":
                torch.cuda.synchronize()
            if run:
                times.append(time.perf_counter() - start)
        probs[tiling, precision] = out.softmax(0)[1]
        median = statistics.median(times)
        if (tiling, precision) == ("old", "fp32"):
            baseline = median
        ratio = f"{median / baseline:.2f}" if baseline else "-"
        print(f"| {tiling} | {precision} | {median:.3f} | {min(times):.3f} | {max(times):.3f} | {ratio} |", flush=True)
    print("\n| cell probabilities | max abs. difference |")
    print("|---|---|")
    pairs = [(f"{t} bf16 vs {t} fp32", (t, "bf16"), (t, "fp32")) for t in TILINGS]
    pairs.append(("new fp32 vs old fp32", ("new", "fp32"), ("old", "fp32")))
    for name, a, b in pairs:
        if a in probs and b in probs:
            print(f"| {name} | {(probs[a] - probs[b]).abs().max().item():.1e} |")
    print(f"\n# load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
