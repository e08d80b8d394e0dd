"""Shared fixtures: where the real datasets are.

Tests that need real data take the ``data_dir`` fixture. It reads CNNLAB_DATA
(scripts/test.sh points it at ../shared/data). Without the data the test is
skipped with the reason, except under CI (CI=true), where missing data fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# The tests run many small operators, where a second intra-op thread costs more in
# synchronisation than it gains (densenet100_k12 at 4x4: 38 s with two threads on
# the shared 2-core machine, 1.8 s with one).
torch.set_num_threads(1)


def _shared_data() -> Path | None:
    env = os.environ.get("CNNLAB_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return next((p for p in candidates if (p / "README.md").is_file()), None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real datasets (../shared/data), or skip / fail when absent."""
    found = _shared_data()
    if found is None:
        reason = "real data not found: set CNNLAB_DATA to the shared/data folder"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found
