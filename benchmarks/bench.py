"""What every side-by-side benchmark here shares: the machine, torch, the threads and the
load average printed around its table, and the one timing loop (imported by the scripts
beside it)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from cnnlab.hardware import machine


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's intra-op threads (torch's default if unset)."""
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (torch's default if unset)")


def begin(threads: int | None) -> None:
    """Sets the threads and prints the machine, torch and the load average before."""
    if threads:
        torch.set_num_threads(threads)
    print("machine:", machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("load average before:", load())


def load() -> str:
    """The 1, 5 and 15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed_runs(step: Callable[[], None], steps: int, repeats: int, warmup: int) -> tuple[float, list[float]]:
    """Seconds of ``warmup`` untimed calls of ``step`` (compilation happens there), then the
    seconds of each of ``repeats`` timed runs of ``steps`` calls."""
    tic = time.perf_counter()
    for _ in range(warmup):
        step()
    warm = time.perf_counter() - tic
    runs = []
    for _ in range(repeats):
        tic = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append(time.perf_counter() - tic)
    return warm, runs
