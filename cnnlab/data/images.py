"""Decoding one image file safely: bounded size, full decode, 16-bit scaled to 8.

Every reader that decodes images (image folders and tar shards, ISBI slices,
``seg predict``) goes through :func:`decode_image`, so they share three promises:

* Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, 89.5 million
  pixels) is an error naming the file, for its warning as for its error: a
  small file cannot make cnnlab allocate gigabytes;
* only raster formats are opened (PNG, JPEG, BMP, GIF, TIFF, WebP, PNM): a file
  that is really EPS or another format whose loader runs programs is refused;
* the whole image is decoded at once, so a truncated file fails here, not later
  (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off);
* 16-bit greys (``I;16`` PNGs, microscopy TIFFs) are scaled to 8 bits,
  ``round(v * 255 / 65535)``, instead of Pillow's ``convert("L")``, which clips
  every value above 255 to white.

Any exception Pillow raises while decoding hostile bytes (its plugins raise
``struct.error``, ``IndexError`` and others, not only ``OSError``) becomes an
:class:`ImageDecodeError` with the file's name, so a bad file is one line.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnlab.errors import CnnlabError
from cnnlab.files import require_file

GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
# The raster formats cnnlab reads. Pillow would otherwise identify files by content
# among all its plugins, including EPS, whose loader runs Ghostscript on the file.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")  # JPEG includes MPO
# Pillow's 16-bit grey modes (16-bit PNG and TIFF greys open as one of these).
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageDecodeError(CnnlabError):
    """An image file that does not decode (corrupt, truncated, not an image, or a decompression bomb)."""


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


def _to_array(image: Image.Image, grey: bool) -> np.ndarray:
    if image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and grey):
        # "I" (32-bit) is how older Pillows open 16-bit PNGs; values beyond 16 bits are clipped.
        wide = np.asarray(image, dtype=np.float64)
        scaled = np.rint(np.clip(wide, 0, 65535) * (255 / 65535)).astype(np.uint8)
        return scaled if grey else np.repeat(scaled[:, :, None], 3, axis=2)
    if image.mode == "F":
        # Float images carry no range; 0..255 is assumed and the rest clipped, as Pillow does.
        scaled = np.rint(np.clip(np.asarray(image, dtype=np.float64), 0, 255)).astype(np.uint8)
        return scaled if grey else np.repeat(scaled[:, :, None], 3, axis=2)
    return np.asarray(image.convert("L" if grey else "RGB"))


def decode_image(source: str | Path | bytes, where: str | Path | None = None, *, grey: bool | None = None,
                 resize_to: int | None = None) -> np.ndarray:
    """Decodes an image to a uint8 array: (H, W) for grey, (H, W, 3) for colour.

    Args:
        source: a file path, or the file's bytes.
        where: the name used in errors (the path by default; ``shard.tar:member`` for tar members).
        grey: True forces grey, False forces RGB; None keeps grey images grey and
            turns everything else into RGB.
        resize_to: rescale (bilinear, antialiased) so the shorter side is this
            long and centre-crop to a square.

    Raises:
        ImageDecodeError: the file does not decode, naming it.
        CnnlabError: a path that does not exist, naming where it was looked for.
    """
    name = where if where is not None else source if not isinstance(source, bytes) else "<bytes>"
    handle = io.BytesIO(source) if isinstance(source, bytes) else require_file(source, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle, formats=FORMATS) as image:
                image.load()
                want_grey = image.mode in GREY_MODES if grey is None else grey
                array = _to_array(image, want_grey)
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"cannot decode {name}: not an image in a format cnnlab reads ({', '.join(FORMATS)})"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageDecodeError(f"{name}: refused as a decompression bomb ({_one_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - any failure inside Pillow on hostile bytes is a bad file
        raise ImageDecodeError(f"cannot decode {name} ({type(err).__name__}: {_one_line(err)})") from None
    if resize_to is not None:
        array = _resize_center_crop(array, resize_to)
    return array


def _resize_center_crop(array: np.ndarray, side: int) -> np.ndarray:
    image = Image.fromarray(array)
    scale = side / min(image.size)
    width, height = max(side, round(image.width * scale)), max(side, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - side) // 2, (height - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)))
