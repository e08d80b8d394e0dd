"""The U-Net on cell/membrane slices as a task of the one Trainer, and its ``eval`` and ``predict``.

As the paper (Sec. 3): stochastic gradient descent with momentum 0.99 on one large
tile per step (batch 1), the pixel-wise weighted cross-entropy with the weight map
of Eq. 2, and elastic deformation of every training tile. Each step takes a random
slice and a random output tile in it, cuts the input tile around it (mirroring the
slice where the 92 px of context reach outside) and deforms image, mask and weight
map with one draw, seeded by (seed, epoch, step, slice) so a resumed run draws the
same tiles. An epoch is one tile per training slice. With ``folds: k`` the stack is
cut into k contiguous blocks (:func:`cnnlab.segment.data.kfold_splits`) and the
held-out block is scored with the ISBI 2012 errors by overlap-tile inference.
The paper trains for about 10 hours on a GPU; ``epochs`` and the model's ``width``
bound a CPU run (see benchmarks/isbi_cv.py for what was run here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.evaluate.isbi import pixel_error, rand_error, warping_error
from cnnlab.models.unet import valid_input_size
from cnnlab.progress import announce
from cnnlab.data.dataset import data_root
from cnnlab.segment.data import kfold_splits, load_isbi2012, read_grey
from cnnlab.segment.elastic import ElasticDeformation
from cnnlab.segment.losses import weighted_cross_entropy
from cnnlab.segment.tiling import mirror_crop, predict_tiled
from cnnlab.segment.weights import unet_weight_map
from cnnlab.checkpoint import Checkpoint
from cnnlab.train.config import IMAGE_ONLY_KEYS, options_from_dict
from cnnlab.train.monitor import format_metric
from cnnlab.train.task import Task, load_model, seed_from

DATASETS = ("isbi2012",)
# Membranes are where the cell probability is below this (the ISBI polarity: white = cell).
THRESHOLD = 0.5


@dataclass(frozen=True)
class SegOptions:
    """The options of the U-Net's training (``config.task``).

    Attributes:
        tile: output side of a training tile (388 in the paper: input 572).
        weight_map: weight the loss by Eq. 2; False gives the unweighted loss (ablation).
        elastic: deform the tiles (elastic, shift, rotation, grey values); False only
            cuts them at random positions (ablation).
        w0, sigma: the weight map's separation term (10 and 5 px in the paper).
        eval_tile: output tile of the overlap-tile inference that scores held-out slices
            (any valid size: the result does not depend on it); None: chosen per slice
            (:func:`cnnlab.segment.tiling.choose_tile`).
    """

    tile: int = 388
    weight_map: bool = True
    elastic: bool = True
    w0: float = 10.0
    sigma: float = 5.0
    # None (automatic) by default: the stitched map equals the whole-slice prediction for any
    # tile, so the choice changes only the cost, and one 516 px tile per 512x512 slice computes
    # 0.37 x the pixels of the paper's four 388 px tiles. A run that set eval_tile keeps it (and
    # `cnnlab eval`/`predict` use it); older runs recorded 388 only as the old default.
    eval_tile: int | None = None

    def __post_init__(self) -> None:
        valid_input_size(self.tile)  # a tile that no U-Net input produces is refused before reading data



def training_tile(
    image: torch.Tensor, cells: torch.Tensor, weight: torch.Tensor | None, options: SegOptions,
    margin: int, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A random input tile and its output tile of mask and weights, deformed alike."""
    y, x = (int(torch.randint(0, max(s - options.tile, 0) + 1, (1,), generator=generator)) for s in cells.shape)
    side = options.tile + 2 * margin
    # Deform a window with room around the tile (a half-turn moves its corners out by
    # 0.21 side), then cut the tile: far cheaper than deforming the whole slice.
    extra = side // 4 if options.elastic else 0
    box = (y - margin - extra, x - margin - extra, side + 2 * extra, side + 2 * extra)
    image, cells = mirror_crop(image, *box), mirror_crop(cells, *box)
    weight = None if weight is None else mirror_crop(weight, *box)
    if options.elastic:
        image, cells, weight = ElasticDeformation()(image, cells, weight, generator=generator)
    inner = slice(extra + margin, extra + margin + options.tile)
    return image[:, extra:extra + side, extra:extra + side], cells[inner, inner], (
        None if weight is None else weight[inner, inner])


def cell_probabilities(
    model: nn.Module, images: np.ndarray, *, tile: int | None = None, batch_size: int | None = None,
    precision: str | None = "auto",
) -> np.ndarray:
    """(N, H, W) probabilities of the cell class (class 1) by overlap-tile inference.

    ``tile``, ``batch_size`` and ``precision`` as :func:`predict_tiled` (None: the
    automatic tile; bf16 where the processor has it).
    """
    model.eval()
    x = torch.tensor(images, dtype=torch.float32).div(255)[:, None]
    scores = predict_tiled(model, x, tile=tile, batch_size=batch_size, precision=precision)
    return scores.softmax(dim=1)[:, 1].numpy()


def isbi_scores(prob: np.ndarray, cells: np.ndarray) -> dict[str, float]:
    """The challenge's three errors of a stack of cell probabilities."""
    return {"pixel": pixel_error(prob, cells), "rand": rand_error(prob, cells), "warping": warping_error(prob, cells)}


def overlay(image: np.ndarray, prob: np.ndarray, truth: np.ndarray | None = None) -> Image.Image:
    """The image in grey, the predicted membranes (cell probability < THRESHOLD) in red,
    the true membranes (where a label says not-cell) in green when ``truth`` is given,
    and a legend that says so."""
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32)
    layers = [(prob < THRESHOLD, (255.0, 0.0, 0.0), f"red: predicted membrane (p(cell) < {THRESHOLD})")]
    if truth is not None:
        layers.append((~truth, (0.0, 255.0, 0.0), "green: true membrane"))
    for mask, colour, _ in layers:
        rgb[mask] = 0.5 * rgb[mask] + 0.5 * np.array(colour)
    picture = Image.fromarray(rgb.round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for row, (_, colour, text) in enumerate(layers):
        box = draw.textbbox((4, 4 + 12 * row), text)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((4, 4 + 12 * row), text, fill=tuple(int(c) for c in colour))
    return picture


def output_path(out_dir: Path, name: str, suffix: str, taken: set[Path]) -> Path:
    """``out_dir/<stem of name><suffix>``, numbered when two inputs share a stem, so no
    prediction overwrites another of the same call."""
    stem = Path(name).stem
    path, n = out_dir / f"{stem}{suffix}", 1
    while path in taken:
        n += 1
        path = out_dir / f"{stem}-{n}{suffix}"
    taken.add(path)
    return path


def inference_tile(checkpoint: Checkpoint, options: dict[str, Any]) -> int | None:
    """The output tile of ``cnnlab eval``/``predict``: ``--tile``, else the run's eval_tile
    if its config set one, else None (chosen per image). A recorded eval_tile that only
    came from the old default (388) is not a choice, and is not kept."""
    return options.get("tile") or checkpoint.meta.get("config", {}).get("task", {}).get("eval_tile")


class Segmentation(Task):
    """ISBI 2012 slices to cell/membrane maps with the U-Net (see the module docstring)."""

    name = "segmentation"
    card_tasks = ("segmentation",)
    unused_config = IMAGE_ONLY_KEYS
    eval_options = ("data_dir", "batch_size", "tile", "precision", "allow_nonfinite")
    predict_options = ("out", "tile", "batch_size", "format", "labels", "precision", "allow_nonfinite")
    default_best_metric = "val_warping_err"  # the ISBI 2012 ranking the paper's Table 1 uses
    train_columns = ("train_loss",)
    eval_columns = ("val_pixel_err", "val_rand_err", "val_warping_err")
    sample_unit = "tile"
    defaults = {
        "dataset": "isbi2012",
        "batch_size": 1,
        "epochs": 1,
        # The paper gives no learning rate; 0.001 trained steadily at momentum 0.99 in our
        # reduced CPU runs, 0.003 and 0.01 made the loss jump.
        "optimizer": {"name": "sgd", "lr": 0.001, "momentum": 0.99},
        "schedule": {"name": "constant"},
        "eval_batch_size": 4,
    }

    def __init__(self, config: Any, context: Any, device: torch.device) -> None:
        super().__init__(config, context, device)
        self.options = options_from_dict(SegOptions, config.task, "segmentation task option ")
        if config.dataset not in DATASETS:
            raise CnnlabError(f"the U-Net trains on {', '.join(DATASETS)}, got dataset {config.dataset!r}")
        images, cells = load_isbi2012(config.data_dir, "train")
        self.classes = ["membrane", "cell"]
        self.train_ids, self.val_ids = self._split(len(images))
        self.images = torch.from_numpy(images).float().div(255)[:, None]
        self.cells = torch.from_numpy(cells.astype(np.int64))
        self.val_images, self.val_cells = images[self.val_ids], cells[self.val_ids]
        self.weights = [torch.from_numpy(unet_weight_map(cells[i], w0=self.options.w0, sigma=self.options.sigma))
                        if self.options.weight_map else None for i in range(len(cells))]
        self.margin = (valid_input_size(self.options.tile) - self.options.tile) // 2

    def _split(self, count: int) -> tuple[list[int], list[int]]:
        cfg = self.config
        if cfg.folds == 1:
            return list(range(count)), []
        if cfg.fold is None:
            raise CnnlabError("a cross-validation fold needs config.fold; run the folds with cross_validate")
        return kfold_splits(count, cfg.folds)[cfg.fold - 1]

    def build_model(self) -> nn.Module:
        return self.rebuild_model({"model": self.model_record()})

    def model_record(self) -> dict[str, Any]:
        return {"name": self.config.model, "num_classes": 2, "in_chans": 1, "kwargs": self.config.model_kwargs}

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.config.dataset, "options": asdict(self.options),
                "fold": self.config.fold, "folds": self.config.folds, "val_slices": self.val_ids}

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_ids) / self.config.batch_size)

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        cfg, ctx = self.config, self.context
        order = torch.randperm(len(self.train_ids), generator=torch.Generator().manual_seed(
            seed_from(cfg.seed, "order", epoch)))
        chosen = order[step * cfg.batch_size : (step + 1) * cfg.batch_size].tensor_split(ctx.world_size)[ctx.rank]
        tiles = []
        for position in chosen.tolist():
            index = self.train_ids[position]
            generator = torch.Generator().manual_seed(seed_from(cfg.seed, "tile", epoch, step, index))
            tiles.append(training_tile(self.images[index], self.cells[index], self.weights[index], self.options,
                                       self.margin, generator))
        x, target, weight = zip(*tiles)
        weights = None if weight[0] is None else torch.stack(weight).to(self.device)
        return torch.stack(x).to(self.device), torch.stack(target).to(self.device), weights

    def loss(self, net: nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, target, weight = batch
        loss = weighted_cross_entropy(net(x).float(), target, weight)
        return loss, torch.stack([loss.detach(), torch.tensor(float(len(x)), device=x.device)])

    def train_row(self, totals: torch.Tensor, steps: int) -> dict[str, float]:
        return {"train_loss": totals[0].item() / steps}

    def evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        """The ISBI errors of the held-out slices (none without cross-validation)."""
        if not self.val_ids:
            return {}
        # In the run's precision (precision=None: the Trainer's autocast), so that a run's
        # scores do not change with the machine it is evaluated on.
        with autocast():
            prob = cell_probabilities(model, self.val_images, tile=self.options.eval_tile,
                                      batch_size=self.config.eval_batch_size, precision=None)
        return {f"val_{k}_err": v for k, v in isbi_scores(prob, self.val_cells).items()}

    # ----- using a trained model -----

    @classmethod
    def evaluate_checkpoints(cls, checkpoints: list[Checkpoint], options: dict[str, Any]) -> str:
        if len(checkpoints) > 1:
            raise CnnlabError("ensembles are evaluated for image classifiers only")
        checkpoint = checkpoints[0]
        record = checkpoint.meta["task"]
        data_dir = data_root(options.get("data_dir"), checkpoint.meta["config"]["data_dir"])
        images, cells = load_isbi2012(data_dir, "train")
        held_out = record["val_slices"]
        # Without a fold nothing was held out (ISBI's test labels are not public): say so.
        ids, what = (held_out, f"held-out slices {held_out[0]}-{held_out[-1]}") if held_out else (
            list(range(len(images))), f"all {len(images)} training slices (nothing was held out)")
        model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
        announce(f"{checkpoint.path}: overlap-tile inference on {what}, then the three ISBI errors")
        prob = cell_probabilities(model, images[ids], tile=inference_tile(checkpoint, options),
                                  batch_size=options.get("batch_size"), precision=options.get("precision") or "auto")
        scores = isbi_scores(prob, cells[ids])
        return f"{checkpoint.path} on isbi2012, {what}: " + ", ".join(
            f"{k} error {format_metric(f'{k}_err', v)}" for k, v in scores.items())

    @classmethod
    def predict(cls, checkpoint: Checkpoint, inputs: list[str], options: dict[str, Any]) -> list[str]:
        model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
        out = Path(options.get("out") or ".")
        out.mkdir(parents=True, exist_ok=True)
        tile = inference_tile(checkpoint, options)
        fmt = options.get("format") or "png"
        labels = options.get("labels") or []
        if labels and len(labels) != len(inputs):
            raise CnnlabError(f"give one label per image: {len(inputs)} images, {len(labels)} labels")
        taken: set[Path] = set()
        lines = []
        for index, name in enumerate(inputs):
            image = read_grey(name)
            truth = read_grey(labels[index]) > 127 if labels else None
            if truth is not None and truth.shape != image.shape:
                raise CnnlabError(f"{labels[index]} is {truth.shape}, its image {name} {image.shape}")
            prob = cell_probabilities(model, image[None], tile=tile, batch_size=options.get("batch_size"),
                                      precision=options.get("precision") or "auto")[0]
            prob_path = output_path(out, name, f"_prob.{fmt}", taken)
            overlay_path = output_path(out, name, "_overlay.png", taken)
            if fmt == "npy":
                np.save(prob_path, prob.astype(np.float32))
            else:  # 16-bit PNG: cell probability x 65535, the ISBI polarity (white = cell)
                Image.fromarray((prob * 65535).round().astype(np.uint16)).save(prob_path)
            overlay(image, prob, truth).save(overlay_path)
            lines.append(f"{name}: {prob_path}, {overlay_path}")
        return lines

