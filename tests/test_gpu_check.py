"""benchmarks/gpu_check.sh without a GPU: it stops at once, with one line, and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_gpu_check_stops_at_once_without_a_gpu(tmp_path: Path) -> None:
    records = tmp_path / "records"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(records)}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "run it on a GPU machine" in lines[0]
    assert not records.exists()
