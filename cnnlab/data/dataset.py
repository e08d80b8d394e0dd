"""The in-memory image dataset every reader returns, and where data lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError

DEFAULT_ROOT = Path("~/.cache/cnnlab")


@dataclass
class ImageDataset:
    """A whole split held as tensors, so batches are plain slices on any device.

    Attributes:
        images: uint8 tensor (N, C, H, W); augmentation converts to float later,
            on the training device, so the dataset stays 4x smaller than float32.
        labels: int64 tensor (N,).
        classes: class names; ``labels`` index into it.
        name: the dataset name it was loaded under, e.g. ``"cifar10/train"``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise CnnlabError(
                f"{self.name}: images must be a uint8 tensor (N, C, H, W), "
                f"got {self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise CnnlabError(
                f"{self.name}: labels must be an int64 tensor of shape ({len(self.images)},), "
                f"got {self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same dataset with both tensors on ``device``."""
        return ImageDataset(self.images.to(device), self.labels.to(device), self.classes, self.name)


def data_root(data_dir: str | Path | None = None, recorded: str | Path | None = None) -> Path:
    """Where datasets live: ``data_dir`` (``--data-dir``), else ``recorded`` where that
    folder exists, else ``$CNNLAB_DATA``, else ``~/.cache/cnnlab``.

    The one resolution every reader uses (image datasets, the sentence sets, ISBI
    slices), so one flag or one variable points all of them at one folder. A run
    records the absolute folder it was trained from; using the run later (``cnnlab
    eval``) passes it as ``recorded``, so the run finds the very data it trained on
    from any folder; where that folder is gone (moved data, or an older run that
    recorded a relative path), ``$CNNLAB_DATA`` names the new place, and an explicit
    folder always wins.
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise CnnlabError(f"--data-dir must be a folder path, got {data_dir!r}")
    still_there = recorded if recorded and Path(recorded).expanduser().is_dir() else None
    chosen = data_dir or still_there or os.environ.get("CNNLAB_DATA") or recorded or DEFAULT_ROOT
    return Path(chosen).expanduser()


def cache_root() -> Path:
    """The one cache folder: ``$CNNLAB_CACHE``, else ``~/.cache/cnnlab/cache``.

    Decoded datasets live directly in it. Kept apart from :func:`data_root` because
    the data folder may be read-only (a shared copy), while the cache must be writable.
    """
    return Path(os.environ.get("CNNLAB_CACHE") or DEFAULT_ROOT / "cache").expanduser()
