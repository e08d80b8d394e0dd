"""Your own images: class folders, loose or inside tar shards.

Two layouts are read, the class being the name of an image's folder:

* ``PATH/<split>/<class>/<image>`` (what ``torchvision``'s ImageFolder reads);
* tar shards ``PATH/<split>-*.tar`` whose members are ``.../<class>/<image>``,
  as ``../shared/data/cifar10-jpg`` is stored; read without unpacking.

Classes are numbered in sorted order. Images are decoded with Pillow; if every
image is grey the dataset has 1 channel, otherwise greys are repeated to RGB.
All images must share one size unless ``image_size`` is given, in which case each
is rescaled (antialiased) so its shorter side is ``image_size`` and centre-cropped
to a square. A file that does not decode is an error naming it, or with
``on_corrupt="skip"`` is left out and counted in a warning; truncated images and
decompression bombs are never accepted, and 16-bit greys are scaled to 8 bits
(see :mod:`cnnlab.data.images`).

The class list is the union of the class folders of both splits, so a label
means the same class in train and test even when one split lacks a class. A
split that lacks a class the other has is a warning, not an error: a small or
partial test set is legitimate, and the labels stay right; the warning says
that the missing class is never tested (or, for train, never learnt).

Decoding is the slow part (reading the cache instead costs almost nothing), so
the result is cached as uint8 tensors (see :mod:`cnnlab.data.cache`).
"""

from __future__ import annotations

import json
import logging
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.cache import cache_key, load_cached, save_cached
from cnnlab.data.dataset import ImageDataset, cache_root
from cnnlab.data.images import ImageDecodeError, decode_image
from cnnlab.errors import CnnlabError
from cnnlab.progress import announce

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLITS = ("train", "test")
# A member of a plain tar cannot be larger than its shard; in a compressed one
# (gzip, bzip2, xz, told apart by their magic numbers) it is bounded by deflate's
# 1032:1 expansion. A member declaring more is refused before its bytes are read.
MAX_EXPANSION = 1032
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
TAR_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def _is_image(name: str) -> bool:
    path = Path(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _folder_items(files: list[Path]) -> Iterator[tuple[str, str, bytes]]:
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CnnlabError(f"cannot read {path} ({err.strerror or err})") from None
        yield str(path), path.parent.name, data


def _tar_members(shard: Path, *, read: bool) -> Iterator[tuple[str, str, bytes | None]]:
    """(where, class, bytes or None) of each image member; a damaged shard is an error naming it."""
    try:
        size = shard.stat().st_size
        with shard.open("rb") as handle:
            compressed = handle.read(6).startswith(COMPRESSED_MAGIC)
        limit = MAX_EXPANSION * max(size, 1) if compressed else size
        with tarfile.open(shard) as tar:
            for member in tar:
                parent = Path(member.name).parent.name
                if not (member.isfile() and parent and _is_image(member.name)):
                    continue
                printable = "".join(c if c.isprintable() else "?" for c in member.name)
                where = f"{shard}:{printable}"
                if member.size > limit:
                    raise CnnlabError(f"{where}: declares {member.size:,} bytes, more than {shard.name} can hold")
                data = None
                if read:
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if len(data) != member.size:
                        raise CnnlabError(f"{where}: the shard ends inside this member (truncated?)")
                yield where, parent, data
    except CnnlabError:
        raise
    except TAR_ERRORS as err:
        detail = " ".join(str(err).split())[:200]
        raise CnnlabError(f"{shard}: not a readable tar shard ({type(err).__name__}: {detail})") from None


def _tar_items(shards: list[Path]) -> Iterator[tuple[str, str, bytes]]:
    for shard in shards:
        yield from _tar_members(shard, read=True)  # type: ignore[misc]


def _decode(data: bytes, image_size: int | None, where: str = "<image>") -> np.ndarray:
    return decode_image(data, where, resize_to=image_size)


def _split_files(path: Path, split: str) -> tuple[list[Path], bool] | None:
    split_dir = path / split
    if split_dir.is_dir():
        return sorted(p for p in split_dir.glob("*/*") if p.is_file() and _is_image(p.name)), False
    shards = sorted(path.glob(f"{split}-*.tar"))
    return (shards, True) if shards else None


def _sources(path: Path, split: str) -> tuple[list[Path], bool]:
    found = _split_files(path, split)
    if found is None:
        raise FileNotFoundError(
            f"no {split} images in {path}: expected class folders {path / split}/<class>/<image> "
            f"or tar shards {path}/{split}-*.tar"
        )
    return found


def _split_classes(sources: list[Path], sharded: bool) -> set[str]:
    if not sharded:
        return {p.parent.name for p in sources}
    return {parent for shard in sources for _, parent, _ in _tar_members(shard, read=False)}


def load_folder(path: Path, split: str, *, image_size: int | None = None, on_corrupt: str = "error") -> ImageDataset:
    """Reads (or takes from the cache) one split of an image folder or tar-shard set.

    Args:
        path: the dataset folder.
        split: "train" or "test".
        image_size: rescale and centre-crop every image to this square side;
            None requires all images to have one size already.
        on_corrupt: "error" or "skip" (see the module docstring).

    Raises:
        FileNotFoundError: neither layout is present.
        CnnlabError: an undecodable image (with "error"), a damaged tar shard,
            images of different sizes without ``image_size``, or no images at all.
    """
    sources, sharded = _sources(path, split)
    others = [found for other in SPLITS if other != split and (found := _split_files(path, other))]
    slug = f"folder-{path.name}-{split}"
    # The other split's sources are in the key because they decide the class list.
    key = cache_key(sources + [p for files, _ in others for p in files], image_size=image_size,
                    on_corrupt=on_corrupt, sharded=sharded, version="union-classes")
    cached = load_cached(slug, key)
    if cached is not None:
        dataset, meta = cached
        _report_skipped(int(meta.get("skipped", 0)), path, split)
        _report_missing(meta.get("missing", "[]"), path, split)
        return dataset
    announce(f"decoding {path.name}/{split} (once: cached in {cache_root()} for later runs)")
    own = _split_classes(sources, sharded)
    everywhere = own.union(*(_split_classes(files, shards) for files, shards in others))
    classes = sorted(everywhere)
    missing = json.dumps(sorted(everywhere - own))
    items = _tar_items(sources) if sharded else _folder_items(sources)
    dataset, skipped = _decode_all(items, f"{path.name}/{split}", image_size, on_corrupt, classes)
    _report_skipped(skipped, path, split)
    _report_missing(missing, path, split)
    save_cached(slug, key, dataset, skipped=str(skipped), missing=missing)
    return dataset


def _decode_all(
    items: Iterator[tuple[str, str, bytes]], name: str, image_size: int | None, on_corrupt: str,
    classes: list[str] | None = None,
) -> tuple[ImageDataset, int]:
    arrays, class_names, skipped = [], [], 0
    first_where = ""
    for where, class_name, data in items:
        try:
            array = _decode(data, image_size, where)
        except ImageDecodeError as err:
            if on_corrupt == "error":
                raise ImageDecodeError(f"{err}; fix or remove it, or pass on_corrupt='skip'") from None
            log.debug("skipping undecodable %s (%s)", where, err)
            skipped += 1
            continue
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise CnnlabError(
                f"{where} is {array.shape[1]}x{array.shape[0]} but {first_where} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}: give image_size to resize all images to one size"
            )
        first_where = first_where or where
        arrays.append(array)
        class_names.append(class_name)
    if not arrays:
        raise CnnlabError(f"{name}: no decodable images found ({skipped} skipped)")
    return _stack(arrays, class_names, name, classes), skipped


def _stack(arrays: list[np.ndarray], class_names: list[str], name: str, classes: list[str] | None) -> ImageDataset:
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    classes = classes if classes is not None else sorted(set(class_names))
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[c] for c in class_names], dtype=torch.int64)
    return ImageDataset(images, labels, classes, name)


def _report_skipped(skipped: int, path: Path, split: str) -> None:
    if skipped:
        log.warning("%s/%s: skipped %d images that could not be decoded", path, split, skipped)


def _report_missing(missing: str, path: Path, split: str) -> None:
    try:
        classes = json.loads(missing)
    except ValueError:
        classes = []
    if classes:
        other = "test" if split == "train" else "train"
        consequence = "the model never learns them" if split == "train" else "they are never tested"
        log.warning("%s/%s has no images of class(es) %s, which the %s split has: %s",
                    path, split, ", ".join(classes), other, consequence)
