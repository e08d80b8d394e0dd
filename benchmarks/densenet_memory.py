"""Peak training memory of a DenseNet step, plain vs ``memory_efficient=True``.

Each measurement runs in a fresh Python process (peak RSS is a process-wide high
water mark that never goes down, so modes must not share a process). The process
builds the model and a random batch, records its resident memory (baseline), runs
two training steps (forward, backward, SGD update) and reports the peak RSS
(``resource.getrusage(...).ru_maxrss``) minus the baseline: the memory the step
needs on top of the weights, i.e. activations kept for backward, gradients and
temporaries. The gradients are the same in both modes; the difference is the
activations. Also reports the time of the second step (the first warms up).
Median of ``--repeats`` processes per mode, modes interleaved.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/densenet_memory.py --model densenet121 \
        --input-size 224 --batch-size 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MODES = {"plain": False, "memory_efficient": True}


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def worker(model_name: str, mode: str, input_size: int, batch_size: int, threads: int) -> dict:
    """One process, one mode: baseline RSS, peak RSS after two training steps, step time."""
    import torch

    import cnnlab

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = cnnlab.create_model(model_name, memory_efficient=MODES[mode]).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch_size, 3, input_size, input_size)
    y = torch.randint(0, model.num_classes, (batch_size,))
    baseline = _rss_mib()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"mode": mode, "baseline_mib": baseline, "peak_mib": peak, "step_mib": peak - baseline,
            "step_s": times[1]}


def _run(args: argparse.Namespace, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--model", args.model, "--input-size", str(args.input_size),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.model, args.worker, args.input_size, args.batch_size, args.threads)))
        return

    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            results[mode].append(_run(args, mode))
            print(json.dumps(results[mode][-1]), file=sys.stderr, flush=True)

    from cnnlab.hardware import machine  # here: the parent process measures nothing, its children do

    print(f"{args.model}, batch {args.batch_size} at {args.input_size}x{args.input_size}, "
          f"{args.threads} thread(s), {machine()['cpu']}, "
          f"median of {args.repeats} fresh processes per mode\n")
    print("| mode | baseline RSS (MiB) | peak RSS (MiB) | step memory = peak - baseline (MiB) | step time (s) |")
    print("|---|---|---|---|---|")
    medians = {}
    for mode, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "mode"}
        medians[mode] = med
        print(f"| {mode} | {med['baseline_mib']:.0f} | {med['peak_mib']:.0f} | {med['step_mib']:.0f} | "
              f"{med['step_s']:.2f} |")
    plain, efficient = medians["plain"], medians["memory_efficient"]
    print(f"\nmemory_efficient / plain: step memory x{efficient['step_mib'] / plain['step_mib']:.2f}, "
          f"step time x{efficient['step_s'] / plain['step_s']:.2f}")


if __name__ == "__main__":
    main()
