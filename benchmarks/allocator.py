"""What glibc's default malloc costs a training run, and what ``keep_freed_memory`` saves.

Runs the same short training (ResNet-20, the fast recipe, 2 epochs of CIFAR-10)
alternately with the allocator as glibc sets it (``CNNLAB_KEEP_FREED_MEMORY=0``) and
as the ``cnnlab`` command sets it (:func:`cnnlab.hardware.keep_freed_memory`), each
run a fresh process, and prints per run: wall seconds, user and kernel CPU seconds,
peak resident memory and the trainer's images per second (median of the epochs).

    CNNLAB_DATA=../shared/data .venv/bin/python benchmarks/allocator.py --runs 3
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnlab.hardware import machine

VARIANTS = {"glibc default": "0", "keep freed memory": "1"}


def train_once(keep: str, epochs: int, out: Path) -> dict[str, float]:
    """One training run in a fresh process; its own resource usage from wait4."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "cnnlab", "train", "resnet20", "--recipe", "resnet_cifar_fast",
               "--epochs", str(epochs), "--out", str(out)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "CNNLAB_KEEP_FREED_MEMORY": keep},
                               stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"training failed (wait status {status}): {' '.join(command)}")
    rates = [float(row["img_per_s"]) for row in csv.DictReader((out / "metrics.csv").open())]
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "max_rss_mib": usage.ru_maxrss / 1024, "img_per_s": statistics.median(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant, alternating")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    print("machine:", machine())
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            for name, keep in VARIANTS.items():
                row = train_once(keep, args.epochs, Path(scratch) / "run")
                results[name].append(row)
                print(f"run {run + 1} {name:18s} " + " ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    medians = {name: {key: statistics.median(r[key] for r in rows) for key in rows[0]} for name, rows in results.items()}
    base = medians["glibc default"]["img_per_s"]
    for name, rows in results.items():
        summary = ", ".join(f"{key} {median:.1f} ({min(r[key] for r in rows):.1f}-{max(r[key] for r in rows):.1f})"
                            for key, median in medians[name].items())
        print(f"{name:18s} median (min-max) over {len(rows)}: {summary}; "
              f"img/s ratio {medians[name]['img_per_s'] / base:.2f}")


if __name__ == "__main__":
    main()
