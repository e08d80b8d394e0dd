"""A cache of decoded datasets, so slow readers (JPEG shards, image folders) run once.

An entry is one safetensors file under :func:`cache_root` holding the uint8
images and int64 labels, with the class names and the reader's counts in its
metadata. Its name carries a hash of the source files' paths, sizes and
modification times and of the reader's parameters: change any source and the
entry is simply not found again. Entries are written to a temporary file,
fsynced and renamed into place, so a killed process never leaves a broken one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from cnnlab.data.dataset import ImageDataset, cache_root
from cnnlab.files import atomic_write

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when a reader's output changes for the same sources


def cache_key(sources: list[Path], **params: Any) -> str:
    """A hash of the sources' identity (path, size, mtime) and the reader's parameters."""
    digest = hashlib.sha256(json.dumps({"version": FORMAT_VERSION, **params}, sort_keys=True).encode())
    for source in sources:
        stat = source.stat()
        digest.update(f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _entry(slug: str, key: str) -> Path:
    safe_slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in slug)
    return cache_root() / f"{safe_slug}-{key}.safetensors"


def load_cached(slug: str, key: str) -> tuple[ImageDataset, dict[str, str]] | None:
    """The cached dataset and its metadata, or None if absent or unreadable."""
    path = _entry(slug, key)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as entry:
            meta = entry.metadata() or {}
            images, labels = entry.get_tensor("images"), entry.get_tensor("labels")
        classes = json.loads(meta["classes"])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError("the class names are not a list of strings")
        dataset = ImageDataset(images, labels, classes, meta["name"])
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ValueError("labels outside the class list")
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError) as err:
        log.warning("ignoring unreadable cache entry %s (%s); decoding again", path, err)
        return None
    return dataset, meta


def save_cached(slug: str, key: str, dataset: ImageDataset, **extra: str) -> None:
    """Writes the entry atomically; a cache that cannot be written only logs a warning."""
    path = _entry(slug, key)
    meta = {"classes": json.dumps(dataset.classes), "name": dataset.name, **extra}
    payload = save({"images": dataset.images.contiguous(), "labels": dataset.labels.contiguous()}, metadata=meta)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, payload)
    except OSError as err:
        log.warning("could not write the dataset cache %s (%s); set CNNLAB_CACHE to a writable folder", path, err)
