"""What the processor computes natively: the one place that decides cnnlab's fast path.

``precision: auto`` (training, the default) and U-Net inference's ``"auto"`` both
ask :func:`native_bf16`: bf16 autocast with channels_last activations where the
device has bf16 arithmetic, fp32 elsewhere, where bf16 is emulated and slower.
Measured on a 2-core Intel Xeon with AMX (benchmarks/throughput.md): ResNet-20's
training step 2.1x and ResNet-50's 3.6x the fp32 speed; the U-Net's 512x512 slice
0.22x the fp32 time (benchmarks/unet_results.md).
"""

from __future__ import annotations

import torch


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
