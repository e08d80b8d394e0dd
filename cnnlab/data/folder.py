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
``on_corrupt="skip"`` is left out and counted in a warning; truncated images are
never accepted (Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off).

Decoding is the slow part (CIFAR-10's 10,000 test JPEGs took 2.1 s on this
2-core machine, 0.003 s from the cache), so the result is cached as uint8
tensors (see :mod:`cnnlab.data.cache`).
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cnnlab.data.cache import cache_key, load_cached, save_cached
from cnnlab.data.dataset import ImageDataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def _is_image(name: str) -> bool:
    path = Path(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _folder_items(files: list[Path]) -> Iterator[tuple[str, str, bytes]]:
    for path in files:
        yield str(path), path.parent.name, path.read_bytes()


def _tar_items(shards: list[Path]) -> Iterator[tuple[str, str, bytes]]:
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar:
                parent = Path(member.name).parent.name
                if member.isfile() and parent and _is_image(member.name):
                    yield f"{shard}:{member.name}", parent, tar.extractfile(member).read()


def _decode(data: bytes, image_size: int | None) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes now, so a truncated file fails here
        image = image.convert("L" if image.mode in GREY_MODES else "RGB")
    if image_size is not None:
        image = _resize_center_crop(image, image_size)
    return np.asarray(image)


def _resize_center_crop(image: Image.Image, side: int) -> Image.Image:
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _sources(path: Path, split: str) -> tuple[list[Path], bool]:
    split_dir = path / split
    if split_dir.is_dir():
        return sorted(p for p in split_dir.glob("*/*") if p.is_file() and _is_image(p.name)), False
    shards = sorted(path.glob(f"{split}-*.tar"))
    if shards:
        return shards, True
    raise FileNotFoundError(
        f"no {split} images in {path}: expected class folders {split_dir}/<class>/<image> "
        f"or tar shards {path}/{split}-*.tar"
    )


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
        ValueError: an undecodable image (with "error"), images of different
            sizes without ``image_size``, or no images at all.
    """
    sources, sharded = _sources(path, split)
    slug = f"folder-{path.name}-{split}"
    key = cache_key(sources, image_size=image_size, on_corrupt=on_corrupt, sharded=sharded)
    cached = load_cached(slug, key)
    if cached is not None:
        dataset, meta = cached
        _report_skipped(int(meta.get("skipped", 0)), path, split)
        return dataset
    items = _tar_items(sources) if sharded else _folder_items(sources)
    dataset, skipped = _decode_all(items, f"{path.name}/{split}", image_size, on_corrupt)
    _report_skipped(skipped, path, split)
    save_cached(slug, key, dataset, skipped=str(skipped))
    return dataset


def _decode_all(
    items: Iterator[tuple[str, str, bytes]], name: str, image_size: int | None, on_corrupt: str
) -> tuple[ImageDataset, int]:
    arrays, class_names, skipped = [], [], 0
    first_where = ""
    for where, class_name, data in items:
        try:
            array = _decode(data, image_size)
        except DECODE_ERRORS as err:
            if on_corrupt == "error":
                hint = "fix or remove it, or pass on_corrupt='skip'"
                raise ValueError(f"cannot decode {where} ({err}); {hint}") from None
            log.debug("skipping undecodable %s (%s)", where, err)
            skipped += 1
            continue
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            raise ValueError(
                f"{where} is {array.shape[1]}x{array.shape[0]} but {first_where} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}: give image_size to resize all images to one size"
            )
        first_where = first_where or where
        arrays.append(array)
        class_names.append(class_name)
    if not arrays:
        raise ValueError(f"{name}: no decodable images found ({skipped} skipped)")
    return _stack(arrays, class_names, name), skipped


def _stack(arrays: list[np.ndarray], class_names: list[str], name: str) -> ImageDataset:
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    else:
        images = torch.from_numpy(np.stack(arrays)).unsqueeze(1)
    classes = sorted(set(class_names))
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[c] for c in class_names], dtype=torch.int64)
    return ImageDataset(images, labels, classes, name)


def _report_skipped(skipped: int, path: Path, split: str) -> None:
    if skipped:
        log.warning("%s/%s: skipped %d images that could not be decoded", path, split, skipped)
