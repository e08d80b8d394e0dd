"""Test-time protocols of the papers: which views of an image the model sees, and how
their predictions are combined.

A protocol is a function ``protocol(model, images, **geometry) -> probabilities``:
``images`` is a float batch (N, C, H, W), already normalised; the model is any
callable on such batches returning logits (N, K) or a class-score map
(N, K, h, w), which is averaged over space. The softmax of every view is
averaged, so the result is (N, K) class probabilities. Protocols only call the
model; they never reach into it.

The default geometry is each paper's, for ImageNet-sized images (224-pixel
crops). For small images (CIFAR, digits) pass smaller sizes, or take the paper's
geometry scaled to the network's input with :func:`scaled_geometry`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.augment import resize_bilinear
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.metrics import topk_correct
from cnnlab.progress import Progress

Model = Callable[[torch.Tensor], Any]
Protocol = Callable[..., torch.Tensor]

# Krizhevsky et al. (2012) and He et al. (2016): 224 crops of images rescaled to 256.
TEN_CROP_RESIZE, CROP = 256, 224
# Szegedy et al. (2015), section 10: shorter side 256, 288, 320 and 352.
GOOGLENET_SCALES = (256, 288, 320, 352)
# Simonyan & Zisserman (2015) test at Q in {224, 256, ...}; He et al. (2016), section 3.4,
# average the scores at shorter sides {224, 256, 384, 480, 640}.
DENSE_SCALES = (224, 256, 384, 480, 640)


# --- geometry -------------------------------------------------------------------------------


def resize_shorter(images: torch.Tensor, side: int) -> torch.Tensor:
    """The batch rescaled (bilinear, antialiased when shrinking) so its shorter side is ``side``."""
    h, w = images.shape[-2:]
    scale = side / min(h, w)
    size = (side, max(side, round(w * scale))) if h <= w else (max(side, round(h * scale)), side)
    return resize_bilinear(images, size)


def crop(images: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` window at (``top``, ``left``) of every image."""
    h, w = images.shape[-2:]
    if size > min(h, w):
        raise CnnlabError(
            f"a {size}x{size} crop does not fit a {h}x{w} image: pass a smaller crop "
            "(scaled_geometry(protocol, input_size) gives the paper's geometry for small images)"
        )
    return images[..., top : top + size, left : left + size]


def _corners_and_center(h: int, w: int, size: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner windows and the centre one."""
    return [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]


def _with_mirror(view: torch.Tensor) -> Iterator[torch.Tensor]:
    yield view
    yield view.flip(-1)


def center_views(
    images: torch.Tensor, *, crop_size: int | None = None, resize: int | None = None
) -> Iterator[torch.Tensor]:
    """One view: optionally rescale the shorter side to ``resize``, then the centre ``crop_size`` square."""
    x = resize_shorter(images, resize) if resize else images
    h, w = x.shape[-2:]
    size = crop_size or min(h, w)
    yield crop(x, (h - size) // 2, (w - size) // 2, size)


def pad(images: torch.Tensor, padding: int, fill: float | Sequence[float] = 0.0) -> torch.Tensor:
    """The batch with ``padding`` pixels of ``fill`` (one value, or one per channel) on every side."""
    value = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)
    return F.pad(images - value, [padding] * 4) + value


def ten_crop_views(
    images: torch.Tensor,
    *,
    crop_size: int = CROP,
    resize: int | None = TEN_CROP_RESIZE,
    padding: int = 0,
    fill: float | Sequence[float] = 0.0,
) -> Iterator[torch.Tensor]:
    """Ten views: the four corner and the centre ``crop_size`` squares, each with its mirror.

    Krizhevsky et al. (2012), section 4.1. A CIFAR network, trained on 32-pixel crops of
    the image padded by 4 (He et al. 2016, section 4.2), takes its 10 crops at that
    scale: ``resize=None, padding=4``, with ``fill`` the value a black pixel has in the
    (normalised) batch, since training padded with black before normalising.
    """
    x = resize_shorter(images, resize) if resize else images
    if padding:
        x = pad(x, padding, fill)
    for top, left in _corners_and_center(*x.shape[-2:], crop_size):
        yield from _with_mirror(crop(x, top, left, crop_size))


def _squares(x: torch.Tensor) -> list[torch.Tensor]:
    """Left, centre and right squares of a landscape batch (top, centre, bottom if portrait)."""
    h, w = x.shape[-2:]
    side = min(h, w)
    if w >= h:
        return [crop(x, 0, left, side) for left in (0, (w - side) // 2, w - side)]
    return [crop(x, top, 0, side) for top in (0, (h - side) // 2, h - side)]


def crops_144_views(
    images: torch.Tensor, *, scales: Sequence[int] = GOOGLENET_SCALES, crop_size: int = CROP
) -> Iterator[torch.Tensor]:
    """GoogLeNet's 144 views: 4 scales x 3 squares x 6 crops x 2 mirrors.

    Szegedy et al. (2015), section 10: the shorter side rescaled to each scale;
    the left, centre and right squares (top, centre, bottom for portrait
    images); from each, the four corner and the centre ``crop_size`` crops and
    the square itself resized to ``crop_size``; and the mirror of every one.
    """
    for scale in scales:
        for square in _squares(resize_shorter(images, scale)):
            for top, left in _corners_and_center(scale, scale, crop_size):
                yield from _with_mirror(crop(square, top, left, crop_size))
            yield from _with_mirror(resize_shorter(square, crop_size))


def multiscale_views(
    images: torch.Tensor, *, scales: Sequence[int] = DENSE_SCALES, flip: bool = True
) -> Iterator[torch.Tensor]:
    """The whole image at every scale (shorter side), and its mirror when ``flip``.

    For dense evaluation (Simonyan & Zisserman 2015, section 3.2; He et al. 2016,
    section 3.4) the network is applied to the whole, uncropped image.
    """
    for scale in scales:
        x = resize_shorter(images, scale)
        yield from _with_mirror(x) if flip else iter([x])


# --- combining predictions ------------------------------------------------------------------


def class_scores(output: Any) -> torch.Tensor:
    """The model's class scores (N, K), from logits or from a score map (N, K, h, w).

    A score map is averaged over space, as dense evaluation sum-pools it (VGG,
    section 3.2); for a (tuple, list) output, e.g. main and auxiliary logits,
    the first entry is the main one.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() != 2:
        raise CnnlabError(f"a model must return logits (N, K) or a score map (N, K, h, w), got {tuple(output.shape)}")
    return output


def mean_probabilities(model: Model, views: Iterator[torch.Tensor]) -> torch.Tensor:
    """Softmax of the model's scores, averaged over the views (one view at a time, to bound memory)."""
    total, count = None, 0
    for view in views:
        probs = class_scores(model(view.contiguous())).float().softmax(dim=1)
        total = probs if total is None else total + probs
        count += 1
    return total / count


def center_crop(
    model: Model, images: torch.Tensor, *, crop_size: int | None = None, resize: int | None = None
) -> torch.Tensor:
    """Single view: the whole image by default; ImageNet papers use ``resize=256, crop_size=224``."""
    return mean_probabilities(model, center_views(images, crop_size=crop_size, resize=resize))


def center_and_mirror(
    model: Model, images: torch.Tensor, *, crop_size: int | None = None, resize: int | None = None
) -> torch.Tensor:
    """The centre view and its horizontal mirror: the cheapest test-time augmentation, the
    flip that CIFAR training uses (softmax averaged over the two)."""
    return mean_probabilities(model, _with_mirror(next(center_views(images, crop_size=crop_size, resize=resize))))


def ten_crop(
    model: Model,
    images: torch.Tensor,
    *,
    crop_size: int = CROP,
    resize: int | None = TEN_CROP_RESIZE,
    padding: int = 0,
    fill: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """AlexNet's 10-crop test: four corners and centre, with mirrors (see :func:`ten_crop_views`)."""
    return mean_probabilities(model, ten_crop_views(images, crop_size=crop_size, resize=resize, padding=padding,
                                                    fill=fill))


def crops_144(
    model: Model, images: torch.Tensor, *, scales: Sequence[int] = GOOGLENET_SCALES, crop_size: int = CROP
) -> torch.Tensor:
    """GoogLeNet's 144-crop test (see :func:`crops_144_views`)."""
    return mean_probabilities(model, crops_144_views(images, scales=scales, crop_size=crop_size))


def multiscale_dense(
    model: Model, images: torch.Tensor, *, scales: Sequence[int] = DENSE_SCALES, flip: bool = True
) -> torch.Tensor:
    """Dense multi-scale test: score maps averaged over space, then softmax averaged over scales and flips.

    The model must accept every scale. A model that returns (N, K) after global
    average pooling and a linear class layer gives exactly the spatial mean of
    its fully convolutional score map, since pooling and the linear layer commute.
    """
    return mean_probabilities(model, multiscale_views(images, scales=scales, flip=flip))


PROTOCOLS: dict[str, Protocol] = {
    "center": center_crop,
    "10crop": ten_crop,
    "144crop": crops_144,
    "multiscale": multiscale_dense,
    "flip": center_and_mirror,
}


def ensemble(
    models: Sequence[Model], images: torch.Tensor, protocol: Protocol = center_crop, **geometry: Any
) -> torch.Tensor:
    """The softmax averaged over several models, each tested with ``protocol``."""
    if not models:
        raise CnnlabError("an ensemble needs at least one model")
    return sum(protocol(model, images, **geometry) for model in models) / len(models)


def scaled_geometry(protocol: str, input_size: int) -> dict[str, Any]:
    """The paper's geometry for ``protocol``, scaled from 224-pixel crops to ``input_size``.

    E.g. ``scaled_geometry("10crop", 32) == {"crop_size": 32, "resize": 37}``. For
    "center" it is ``{}``: the whole image, as the CIFAR papers test.
    """
    ratio = input_size / CROP
    scaled = {
        "center": {},
        "flip": {},
        "10crop": {"crop_size": input_size, "resize": round(TEN_CROP_RESIZE * ratio)},
        "144crop": {"crop_size": input_size, "scales": tuple(round(s * ratio) for s in GOOGLENET_SCALES)},
        "multiscale": {"scales": tuple(round(s * ratio) for s in DENSE_SCALES)},
    }
    if protocol not in scaled:
        raise CnnlabError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    return scaled[protocol]


# --- a whole dataset ------------------------------------------------------------------------


def _resolve(protocol: str | Protocol) -> Protocol:
    if callable(protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise CnnlabError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


@torch.inference_mode()
def evaluate(
    model: Model | Sequence[Model],
    dataset: Any,
    protocol: str | Protocol = "center",
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    transform: Callable[..., torch.Tensor] | None = None,
    **geometry: Any,
) -> dict[str, float]:
    """Top-1/top-5 accuracy and error of a model (or an ensemble) on an :class:`ImageDataset`.

    Args:
        model: a callable on float batches, or a sequence of them (an ensemble:
            softmax averaged). ``nn.Module`` models are put in eval mode for the
            run and restored afterwards.
        dataset: an ImageDataset (uint8 images, int64 labels).
        protocol: a name from :data:`PROTOCOLS` or a protocol function.
        batch_size: images per forward pass (each view is one pass).
        device: where the model runs; batches are moved there.
        transform: deterministic preprocessing of the float 0..1 batch before
            the protocol, e.g. ``build_augment([{"name": "normalize", ...}])``.
        **geometry: the protocol's sizes, e.g. ``crop_size=32, resize=37``.

    Returns:
        ``{"top1", "top5", "top1_err", "top5_err"}`` as fractions (0..1) and ``"n"``.
    """
    protocol_fn = _resolve(protocol)
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if len(dataset) == 0:
        raise CnnlabError(f"{dataset.name} is empty: nothing to evaluate")
    was_training = [m.training for m in models if isinstance(m, nn.Module)]
    for m in models:
        if isinstance(m, nn.Module):
            m.eval()
    correct = {1: 0, 5: 0}
    generator = torch.Generator().manual_seed(0)  # any random transform is at least repeatable
    name = protocol if isinstance(protocol, str) else getattr(protocol, "__name__", "protocol")
    progress = Progress(f"{name} test", math.ceil(len(dataset) / batch_size))
    try:
        for start in range(0, len(dataset), batch_size):
            images = dataset.images[start : start + batch_size].to(device).float() / 255
            labels = dataset.labels[start : start + batch_size].to(device)
            if transform is not None:
                images = transform(images, generator)
            probs = ensemble(models, images, protocol_fn, **geometry)
            for k, hits in topk_correct(probs, labels, (1, 5)).items():
                correct[k] += hits
            progress.update(start // batch_size + 1, min(start + batch_size, len(dataset)))
        progress.finish()
    finally:
        for m, training in zip((m for m in models if isinstance(m, nn.Module)), was_training):
            m.train(training)
    n = len(dataset)
    top1, top5 = correct[1] / n, correct[5] / n
    return {"top1": top1, "top5": top5, "top1_err": 1 - top1, "top5_err": 1 - top5, "n": n}
