"""Shared fixtures: where the real datasets are.

Tests that need real data take the ``data_dir`` fixture. It reads CNNLAB_DATA
(scripts/test.sh points it at ../shared/data). Without the data the test is
skipped with the reason, except under CI (CI=true), where missing data fails.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

# The tests run many small operators, where a second intra-op thread costs more in
# synchronisation than it gains (densenet100_k12 at 4x4: 38 s with two threads on
# the shared 2-core machine, 1.8 s with one).
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def private_run_bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Studies run by the tests (and the docs' snippets) train into a bank of their own, never
    into the user's (``$CNNLAB_RUNS`` or ``~/.cache/cnnlab/runs``)."""
    with pytest.MonkeyPatch.context() as patch:
        bank = tmp_path_factory.mktemp("run-bank")
        patch.setenv("CNNLAB_RUNS", str(bank))
        yield bank


def _shared(folder: str, env: str, marker: str) -> Path | None:
    """``$env``, else ``../shared/<folder>`` beside the checkout, if it holds ``marker``."""
    value = os.environ.get(env)
    candidates = [Path(value)] if value else []
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared" / folder)
    return next((p for p in candidates if (p / marker).is_file()), None)


def _found_or_skip(found: Path | None, reason: str) -> Path:
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real datasets (../shared/data), or skip / fail when absent."""
    return _found_or_skip(_shared("data", "CNNLAB_DATA", "README.md"),
                          "real data not found: set CNNLAB_DATA to the shared/data folder")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The reference-network fixtures (../shared/reference-nets), or skip / fail when absent."""
    return _found_or_skip(_shared("reference-nets", "CNNLAB_REFERENCE_NETS", "fill.py"),
                          "reference-net fixtures not found: set CNNLAB_REFERENCE_NETS to the "
                          "shared/reference-nets folder")


@pytest.fixture(scope="session")
def fill(reference_dir: Path) -> ModuleType:
    """The fixtures' fill rule (fill.py), which recreates each reference state dict."""
    spec = importlib.util.spec_from_file_location("reference_fill", reference_dir / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchrun(ranks: int) -> list[str]:
    """The command that starts ``ranks`` gloo processes on 127.0.0.1 (prefix of the script to run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(ranks),
            "--master-addr", "127.0.0.1", "--master-port", str(port)]
