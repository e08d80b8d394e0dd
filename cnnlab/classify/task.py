"""Image classification as a task of the one Trainer, and its ``eval`` and ``predict``.

The dataset is read once into uint8 tensors and moved to the training device when
it fits; each epoch's batches are slices of a permutation seeded by (seed, epoch);
each batch is augmented on the device with a generator seeded by (seed, epoch,
batch), so every epoch sees different augmentations and a resumed run the very
batches it would have had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.classify.losses import classification_loss
from cnnlab.data import ImageDataset, load_dataset
from cnnlab.data.dataset import data_root
from cnnlab.data.images import decode_image
from cnnlab.errors import CnnlabError
from cnnlab.progress import announce
from cnnlab.evaluate import evaluate, scaled_geometry, topk_correct
from cnnlab.evaluate.inference import eval_precision, prepare_for_inference
from cnnlab.evaluate.protocols import center_views, class_scores, resize_shorter
from cnnlab.registry import model_card
from cnnlab.checkpoint import Checkpoint
from cnnlab.train.config import input_pipeline, options_from_dict
from cnnlab.train.distributed import DistContext, pick_device, unwrap_model
from cnnlab.train.task import Task, load_model, seed_from


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, context: DistContext) -> torch.Tensor:
    """This rank's indices of every batch of an epoch, shape (steps, batch_size // world_size).

    The global batch is split into equal consecutive slices, one per rank, so N
    ranks see exactly the samples one process would. The incomplete last batch is
    dropped, which keeps every step's batch size and so the rate of the papers'
    schedules.
    """
    steps = n // batch_size
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed_from(seed, "order", epoch)))
    local = batch_size // context.world_size
    batches = order[: steps * batch_size].view(steps, batch_size)
    return batches[:, context.rank * local : (context.rank + 1) * local]


def channel_stats(dataset: ImageDataset) -> dict[str, list[float]]:
    """Each channel's mean and standard deviation over the training images, on 0..1 pixels
    (the ``normalize: auto`` of a run without a recipe)."""
    sums = torch.zeros(2, dataset.images.shape[1], dtype=torch.float64)
    for chunk in dataset.images.split(1024):  # a float64 copy of all of CIFAR would take 1.2 GB
        x = chunk.to("cpu", torch.float64).transpose(0, 1).flatten(1) / 255
        sums += torch.stack([x.sum(1), x.square().sum(1)])
    count = dataset.images[:, 0].numel()
    mean = sums[0] / count
    std = (sums[1] / count - mean.square()).clamp_min(0).sqrt()
    return {"mean": [round(float(m), 4) for m in mean], "std": [round(max(float(s), 1e-3), 4) for s in std]}


def place_dataset(dataset: ImageDataset, device: torch.device) -> ImageDataset:
    """The dataset on ``device`` when it takes at most half the free GPU memory, else on the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if dataset.images.numel() > free // 2:
            return dataset
    return dataset.to(device)


@dataclass(frozen=True)
class ClassifyOptions:
    """The image classification task's options (the config's ``task`` keys).

    Attributes:
        train_eval_images: also evaluate, at each evaluation, on this many training images,
            in eval mode and without augmentation (``train_eval_loss``, ``train_eval_top1_err``):
            the training error a paper plots (ResNet's Figure 6, AlexNet's Figure 1), which the
            running training error is not (it is averaged over an epoch of changing weights,
            with augmentation and dropout on). The subset is the same for every seed and run.
            0 leaves it out.
    """

    train_eval_images: int = 0

    def __post_init__(self) -> None:
        if self.train_eval_images < 0:
            raise CnnlabError(f"task option train_eval_images must be 0 or more, got {self.train_eval_images}")


class ImageClassification(Task):
    """Images to classes: cross-entropy (with label smoothing and auxiliary heads),
    top-1 and top-5 error on the test split (and, on request, on a fixed training subset)."""

    name = "classification"
    card_tasks = ("imagenet", "cifar")
    eval_options = ("dataset", "protocol", "ensemble", "data_dir", "batch_size", "device", "precision",
                    "allow_nonfinite")
    default_best_metric = "test_top1_err"
    train_columns = ("train_loss", "train_top1_err")
    eval_columns = ("test_loss", "test_top1_err", "test_top5_err")
    # A run without a recipe (your own images): normalised by the training set's channel
    # statistics, SGD with Nesterov momentum, one epoch of warm-up from a tenth of the
    # rate, then a cosine decay to zero; the rate that trained every family we tried.
    defaults = {
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "schedule": {"name": "cosine", "warmup": 1, "warmup_start": 0.1},
        "normalize": "auto",
    }

    def __init__(self, config: Any, context: DistContext, device: torch.device) -> None:
        super().__init__(config, context, device)
        self.options = options_from_dict(ClassifyOptions, config.task, "classification task option ")
        self.train_set = place_dataset(self._load("train"), device)
        self.test_set = place_dataset(self._load("test"), device)
        self.classes = list(self.train_set.classes)
        if len(self.classes) <= 5:  # top-5 of five classes or fewer is always right
            self.eval_columns = ("test_loss", "test_top1_err")
        # A fixed draw (seed 0, whatever the run's seed), so every run is scored on the same images.
        subset = min(self.options.train_eval_images, len(self.train_set))
        self.train_eval_index = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(0)
                                               )[:subset].sort().values
        if subset:
            self.eval_columns = (*self.eval_columns, "train_eval_loss", "train_eval_top1_err")
        self.batch_size = config.batch_size
        if len(self.train_set) < config.batch_size:
            # An epoch drops its partial last batch (as timm's training loader does: fixed steps
            # per epoch, so resume and DDP shards stay exact); a set smaller than one batch would
            # give no step at all, so it is taken whole, as a DataLoader's one partial batch.
            n = len(self.train_set)
            self.batch_size = n - n % context.world_size
            self.notes.append(f"batch_size {config.batch_size} is larger than the training set ({n} images): "
                              f"training with batches of {self.batch_size}")
        self.normalize = channel_stats(self.train_set) if config.normalize == "auto" else config.normalize
        self.train_transform = input_pipeline(config.to_dict(), train=True, normalize=self.normalize)
        self.eval_transform = input_pipeline(config.to_dict(), train=False, normalize=self.normalize)
        self._check_input_size()
        self._epoch, self._batches = -1, torch.empty(0)

    def _check_input_size(self) -> None:
        """A dataset whose images are too small for the model is refused with the way out."""
        card = model_card(self.config.model)
        size = min(self.eval_transform(self.test_set.images[:1].float() / 255, None).shape[-2:])
        if size < card.min_input_size:
            raise CnnlabError(
                f"{self.config.model} needs inputs of at least {card.min_input_size}x{card.min_input_size}, and "
                f"{self.config.dataset}'s images are {size} px: resize them, e.g. --set "
                f"'preprocess=[{{name: resize, size: {card.input_size}}}]', or use a recipe that does "
                "(--recipe digits for the digits)")

    def _load(self, split: str) -> ImageDataset:
        cfg = self.config
        return load_dataset(cfg.dataset, split, cfg.data_dir, on_corrupt=cfg.on_corrupt, image_size=cfg.image_size)

    def build_model(self) -> nn.Module:
        return self.rebuild_model({"model": self.model_record()})

    def model_record(self) -> dict[str, Any]:
        return {"name": self.config.model, "num_classes": len(self.classes),
                "in_chans": int(self.train_set.images.shape[1]), "kwargs": self.config.model_kwargs}

    def record(self) -> dict[str, Any]:
        # The stored images' size: predict brings a new image to it before the eval transform.
        return {"name": self.name, "dataset": self.config.dataset, "normalize": self.normalize,
                "image_size": list(self.train_set.images.shape[-2:])}

    def steps_per_epoch(self) -> int:
        return len(self.train_set) // self.batch_size

    def _slice(self, dataset: ImageDataset, index: torch.Tensor, transform: Callable, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        index = index.to(dataset.images.device)
        images = dataset.images[index].to(self.device, non_blocking=True)
        labels = dataset.labels[index].to(self.device, non_blocking=True)
        # A CPU generator drives the augmentation wherever the batch is, so a seed
        # means the same crops on every device.
        x = transform(images.float().div_(255), torch.Generator().manual_seed(seed))
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, ctx = self.config, self.context
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = epoch_batches(len(self.train_set), self.batch_size, cfg.seed, epoch, ctx)
        return self._slice(self.train_set, self._batches[step], self.train_transform,
                           seed_from(cfg.seed, "augment", epoch, step, ctx.rank))

    def loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        loss, logits = classification_loss(net(x), y, aux_weights=getattr(unwrap_model(net), "aux_weights", ()),
                                           label_smoothing=self.config.label_smoothing)
        return loss, torch.stack([loss.detach().float(), logits.argmax(1).eq(y).sum().float(),
                                  torch.tensor(float(len(y)), device=y.device)])

    def train_row(self, totals: torch.Tensor, steps: int) -> dict[str, float]:
        return {"train_loss": totals[0].item() / steps, "train_top1_err": 1 - totals[1].item() / totals[2].item()}

    def progress_values(self, totals: torch.Tensor, steps: int) -> dict[str, str]:
        return {"acc": f"{100 * totals[1].item() / totals[2].item():.2f}%"}

    def evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        """Test loss, top-1 and top-5 error (and the training subset's loss and top-1 error),
        each rank scoring its share, summed over ranks."""
        loss, top1, top5 = self._score(model, autocast, self.test_set, torch.arange(len(self.test_set)))
        row = {"test_loss": loss, "test_top1_err": top1, "test_top5_err": top5}
        if len(self.train_eval_index):
            row["train_eval_loss"], row["train_eval_top1_err"], _ = self._score(
                model, autocast, self.train_set, self.train_eval_index)
        return {k: v for k, v in row.items() if k in self.eval_columns}

    def _score(self, model: nn.Module, autocast: Callable, dataset: ImageDataset, index: torch.Tensor
               ) -> tuple[float, float, float]:
        """Mean loss, top-1 and top-5 error on ``dataset[index]``, through the eval transform."""
        ctx = self.context
        # Hybrid parallelism evaluates the same batches on every rank (its dense layers span them).
        whole = getattr(model, "evaluates_whole_batches", False)
        parts, part = (1, 0) if whole else (ctx.world_size, ctx.rank)
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)
        for batch in index.tensor_split(parts)[part].split(self.config.eval_batch_size):
            x, y = self._slice(dataset, batch, self.eval_transform, 0)
            with autocast():
                logits = model(x).float()
            hits = topk_correct(logits, y, (1, 5))
            totals += torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(), hits[1], hits[5], len(y)],
                                   dtype=torch.float64, device=self.device)
        loss, top1, top5, n = (totals if whole else ctx.all_reduce_sum(totals)).tolist()
        return loss / n, 1 - top1 / n, 1 - top5 / n

    # ----- using a trained model -----

    @classmethod
    def evaluate_checkpoints(cls, checkpoints: list[Checkpoint], options: dict[str, Any]) -> str:
        if "zoo" in checkpoints[0].meta.get("task", {}):
            if len(checkpoints) > 1:
                raise CnnlabError("ensembles are evaluated for trained runs only")
            return evaluate_converted(checkpoints[0], options)
        dataset = options.get("dataset") or checkpoints[0].meta["config"]["dataset"]
        data_dir = data_root(options.get("data_dir"), checkpoints[0].meta["config"]["data_dir"])
        result = evaluate_checkpoints(checkpoints, dataset, protocol=options.get("protocol", "center"),
                                      data_dir=data_dir, batch_size=options.get("batch_size") or 256,
                                      device=options.get("device", "auto"),
                                      precision=options.get("precision") or "auto",
                                      allow_nonfinite=options.get("allow_nonfinite", False))
        members = f"ensemble of {len(checkpoints)}" if len(checkpoints) > 1 else str(checkpoints[0].path)
        top5 = f", top-5 error {100 * result['top5_err']:.2f}%" if len(checkpoints[0].meta["classes"]) > 5 else ""
        return (f"{members} on {dataset} test ({result['n']} images, {options.get('protocol', 'center')}): "
                f"top-1 error {100 * result['top1_err']:.2f}%{top5} (top-1 accuracy {100 * result['top1']:.2f}%)")

    @classmethod
    def predict(cls, checkpoint: Checkpoint, inputs: list[str], options: dict[str, Any]) -> list[str]:
        model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
        meta = checkpoint.meta
        if "zoo" in meta.get("task", {}):
            return predict_converted(model, meta, inputs)
        transform = input_pipeline(meta["config"], train=False, normalize=meta.get("task", {}).get("normalize"))
        height, width = meta["task"]["image_size"]
        lines = []
        for path in inputs:
            x = transform(fit_image(read_image(path, meta["model"]["in_chans"]), height, width), None)
            with torch.inference_mode():
                probs = model(x).float().softmax(1)[0]
            top = probs.topk(min(5, len(probs)))
            ranked = ", ".join(f"{meta['classes'][i]} {100 * p:.1f}%" for p, i in zip(top.values.tolist(),
                                                                                     top.indices.tolist()))
            lines.append(f"{path}: {ranked}")
        return lines


def read_image(path: str, channels: int) -> torch.Tensor:
    """An image file as a float (1, C, H, W) batch in 0..1, grey or RGB as the model takes."""
    array = decode_image(path, grey=channels == 1).astype(np.float32) / 255
    tensor = torch.from_numpy(array)
    return (tensor[None, None] if tensor.dim() == 2 else tensor.permute(2, 0, 1)[None]).contiguous()


def fit_image(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The batch resized (shorter side) and centre-cropped to the training images' size."""
    if x.shape[-2:] == (height, width):
        return x
    x = resize_shorter(x, max(height, width))
    top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]


def evaluate_checkpoints(
    checkpoints: list[Checkpoint],
    dataset: str,
    *,
    protocol: str = "center",
    data_dir: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    allow_nonfinite: bool = False,
    geometry: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Top-1/top-5 of one checkpoint, or of an ensemble (softmax averaged), on a test split.

    The protocol's geometry is the paper's scaled to the size the model was trained
    at (:func:`cnnlab.evaluate.scaled_geometry`), e.g. 10 crops of 32 from 37 for CIFAR,
    with the keys of ``geometry`` in place of its own (``{"resize": None, "padding": 4}``:
    10 crops of the padded image at the training scale; the padding is black, as in training).
    Each model computes in ``precision`` (``"auto"``: as its run trained, bf16 where
    the device has it; see :func:`cnnlab.evaluate.inference.eval_precision`), compiled
    if ``compile``.

    Returns:
        ``{"top1", "top5", "top1_err", "top5_err"}`` as fractions and ``"n"``.

    Raises:
        CnnlabError: the checkpoints disagree on classes or preprocessing, or the
            dataset's classes are not the ones the model was trained on.
    """
    if batch_size < 1:
        raise CnnlabError(f"batch size must be a positive integer, got {batch_size}")
    first = checkpoints[0].meta
    for other in checkpoints[1:]:
        for key in ("preprocess", "normalize"):
            if other.meta["config"][key] != first["config"][key] or (
                    other.meta.get("task", {}).get(key) != first.get("task", {}).get(key)):
                raise CnnlabError(
                    f"ensemble members need the same {key}: {other.path} differs from {checkpoints[0].path}"
                )
        if other.meta["classes"] != first["classes"]:
            raise CnnlabError(
                f"ensemble members need the same classes: {other.path} differs from {checkpoints[0].path}"
            )
    test = load_dataset(dataset, "test", data_dir, image_size=first["config"]["image_size"])
    if test.classes != first["classes"]:
        raise CnnlabError(
            f"{dataset} has classes {test.classes[:5]}..., the model was trained on {first['classes'][:5]}..."
        )
    target = pick_device(device, DistContext())
    models = [prepare_for_inference(load_model(c, target, allow_nonfinite=allow_nonfinite), target,
                                    eval_precision(target, precision, c.meta["config"].get("precision")),
                                    compile=compile) for c in checkpoints]
    transform = input_pipeline(first["config"], train=False, normalize=first.get("task", {}).get("normalize"))
    input_size = transform(test.images[:1].float() / 255, None).shape[-1]
    views = {**scaled_geometry(protocol, input_size), **(geometry or {})}
    if views.get("padding"):  # the protocol pads the normalised batch: with black, normalised
        views["fill"] = transform(torch.zeros(1, test.images.shape[1], 1, 1), None)[0, :, 0, 0].tolist()
    members = f"{len(models)} models" if len(models) > 1 else "the model"
    announce(f"{protocol} test of {members} on {dataset} ({len(test)} images)")
    return evaluate(models, test, protocol, batch_size=batch_size, device=target, transform=transform, **views)


# ----- weights converted from a zoo (`cnnlab convert`): their own preprocessing -----


def zoo_pixels(preprocessing: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """The pixels a zoo's weights expect, from float 0..1 RGB batches: the zoo's range
    (``scale``), channel order (``bgr``) and ``(x - mean) / std``."""
    mean = torch.tensor(preprocessing["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing["std"]).view(1, -1, 1, 1)

    def transform(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x * preprocessing["scale"]
        if preprocessing["bgr"]:
            x = x.flip(1)
        return (x - mean.to(x.device)) / std.to(x.device)

    return transform


def predict_converted(model: nn.Module, meta: dict[str, Any], inputs: list[str]) -> list[str]:
    """``cnnlab predict`` of converted weights: each image's top-5 classes, by name."""
    pre = meta["task"]["zoo"]["preprocessing"]
    names = meta["classes"]
    transform = zoo_pixels(pre)
    lines = []
    for image in inputs:
        x = read_image(image, meta["model"]["in_chans"])
        (view,) = center_views(x, crop_size=pre["input_size"], resize=pre["resize"])
        with torch.inference_mode():
            probs = class_scores(model(transform(view))).float().softmax(1)[0]
        top = probs.topk(min(5, len(probs)))
        lines.append(f"{image}: " + ", ".join(f"{names[i]} {100 * p:.1f}%"
                                              for p, i in zip(top.values.tolist(), top.indices.tolist())))
    return lines


def evaluate_converted(checkpoint: Checkpoint, options: dict[str, Any]) -> str:
    """``cnnlab eval`` of converted weights on a dataset's test split, with the zoo's preprocessing."""
    dataset = options.get("dataset")
    if not dataset:
        raise CnnlabError("converted weights have no run to take a dataset from: give --dataset, "
                          "e.g. --dataset folder:/data/imagenet")
    model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
    meta = checkpoint.meta
    pre = meta["task"]["zoo"]["preprocessing"]
    test = load_dataset(dataset, "test", options.get("data_dir"), image_size=pre["resize"])
    if len(test.classes) != meta["model"]["num_classes"]:
        raise CnnlabError(f"{dataset} has {len(test.classes)} classes, the weights {meta['model']['num_classes']}")
    protocol = options.get("protocol") or "center"
    geometry = {"crop_size": pre["input_size"]} if protocol == "center" else scaled_geometry(protocol,
                                                                                             pre["input_size"])
    target = pick_device(options.get("device") or "auto", DistContext())
    result = evaluate(model.to(target), test, protocol, batch_size=options.get("batch_size") or 64, device=target,
                      transform=zoo_pixels(pre), **geometry)
    return (f"{checkpoint.path} on {dataset} test ({result['n']} images, {protocol}): top-1 error "
            f"{100 * result['top1_err']:.2f}%, top-5 error {100 * result['top5_err']:.2f}%")
