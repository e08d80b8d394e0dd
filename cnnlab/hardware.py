"""What the machine does fast: the one place that decides cnnlab's fast path.

``precision: auto`` (training, the default) and U-Net inference's ``"auto"`` both
ask :func:`native_bf16`: bf16 autocast with channels_last activations where the
device has bf16 arithmetic, fp32 elsewhere, where bf16 is emulated and slower
(the measured gains: benchmarks/throughput.md, benchmarks/unet_results.md).

:func:`keep_freed_memory` keeps glibc from handing a training step's memory back to
the kernel, only to fault it in again at the next step.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from typing import Any

import torch

# mallopt's parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc's largest mmap threshold on 64-bit machines: blocks up to 32 MiB come from the heap.
MMAP_THRESHOLD = 32 << 20
# Free memory at the top of the heap is returned to the kernel only beyond this (the
# largest value mallopt takes): a step frees and re-allocates its activations every time.
TRIM_THRESHOLD = 2**31 - 1


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 in hardware: CUDA GPUs that support it, x86 CPUs
    with AVX512-BF16 or AMX (as PyTorch's cpuinfo reports them). Unknown devices: no."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind == "cpu":
        # Private but stable helpers of torch.cpu (since 2.1); missing ones count as no.
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    By default glibc serves large blocks with mmap (above a threshold that starts at
    128 KiB) and trims the heap once 128 KiB of its top are free: every training step
    gives its activations back to the kernel and page-faults them in again. Raising both
    thresholds removes that kernel time, with the same losses to the last digit (the
    measurement: benchmarks/allocator.md). The process keeps the memory of its
    largest step, as a training run needs anyway. The ``cnnlab`` command calls this
    once; ``CNNLAB_KEEP_FREED_MEMORY=0`` leaves the allocator alone. Returns whether the
    settings took (glibc on Linux only)."""
    if os.environ.get("CNNLAB_KEEP_FREED_MEMORY", "") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, for one): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def machine() -> dict[str, Any]:
    """What numbers were measured on, for studies and benchmarks: CPU model, its matrix-unit
    flags, cores, torch, Python, GPU."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        cpu = fields.get("Model name", cpu).strip()
        flags = set(fields.get("Flags", "").split())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags,
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
