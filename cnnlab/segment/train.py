"""Training the U-Net on cell/membrane slices, and k-fold cross-validation.

As the paper (Sec. 3): stochastic gradient descent with momentum 0.99 on one large
tile per step (batch 1), the pixel-wise weighted cross-entropy with the weight map
of Eq. 2, and elastic deformation of every training tile. Each step takes a random
slice and a random output tile in it, cuts the input tile around it (mirroring the
slice where the 92 px of context reach outside) and deforms image, mask and weight
map with one draw.
The paper trains for about 10 hours on a GPU; ``epochs`` and ``width`` bound a CPU
run (see benchmarks/isbi_cv.py for what was run here).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from cnnlab.evaluate.isbi import pixel_error, rand_error, warping_error
from cnnlab.models.unet import UNet
from cnnlab.registry import create_model
from cnnlab.segment.data import kfold_splits
from cnnlab.segment.elastic import ElasticDeformation
from cnnlab.segment.losses import weighted_cross_entropy
from cnnlab.segment.tiling import mirror_crop, predict_tiled
from cnnlab.segment.weights import unet_weight_map
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.loop import NonFiniteLossError


@dataclass(frozen=True)
class SegTrainConfig:
    """A U-Net training run.

    Attributes:
        width: channels of the first level (64 in the paper).
        tile: output side of a training tile (388 in the paper: input 572).
        epochs: passes; one epoch is one tile per training slice.
        lr: learning rate (the paper gives none; 0.001 trained steadily at momentum 0.99 in
            our reduced CPU runs, 0.003 and 0.01 made the loss jump).
        momentum: 0.99 in the paper: many past tiles decide each update.
        weight_map: weight the loss by Eq. 2; False gives the unweighted loss (ablation).
        elastic: deform the tiles (elastic, shift, rotation, grey values); False only
            cuts them at random positions (ablation).
        w0, sigma: the weight map's separation term (10 and 5 px in the paper).
        seed: seeds the weights, the tile order and the deformations.
    """

    width: int = 64
    tile: int = 388
    epochs: int = 1
    lr: float = 0.001
    momentum: float = 0.99
    weight_map: bool = True
    elastic: bool = True
    w0: float = 10.0
    sigma: float = 5.0
    seed: int = 0


def _training_tile(
    image: torch.Tensor, cells: torch.Tensor, weight: torch.Tensor | None, config: SegTrainConfig,
    margin: int, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A random input tile and its output tile of mask and weights, deformed alike."""
    y, x = (int(torch.randint(0, max(s - config.tile, 0) + 1, (1,), generator=generator)) for s in cells.shape)
    side = config.tile + 2 * margin
    # Deform a window with room around the tile (a half-turn moves its corners out by
    # 0.21 side), then cut the tile: far cheaper than deforming the whole slice.
    extra = side // 4 if config.elastic else 0
    box = (y - margin - extra, x - margin - extra, side + 2 * extra, side + 2 * extra)
    image, cells = mirror_crop(image, *box), mirror_crop(cells, *box)
    weight = None if weight is None else mirror_crop(weight, *box)
    if config.elastic:
        image, cells, weight = ElasticDeformation()(image, cells, weight, generator=generator)
    inner = slice(extra + margin, extra + margin + config.tile)
    return image[:, extra:extra + side, extra:extra + side], cells[inner, inner], (
        None if weight is None else weight[inner, inner])


def train_unet(
    images: np.ndarray,
    cells: np.ndarray,
    config: SegTrainConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> UNet:
    """Trains a U-Net on (N, H, W) uint8 images and bool cell masks (True = cell).

    Writes checkpoint ``last`` (safetensors + JSON, atomically) to ``checkpoint_dir``
    after every epoch when given.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the step is named).
    """
    if images.shape != cells.shape or images.ndim != 3:
        raise ValueError(f"expected images and masks of one shape (N, H, W), got {images.shape} and {cells.shape}")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = create_model("unet", width=config.width)
    margin = (model.input_size_for(config.tile) - config.tile) // 2
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    weights = [torch.from_numpy(unet_weight_map(c, w0=config.w0, sigma=config.sigma)) if config.weight_map else None
               for c in cells]
    model.train()
    step = 0
    for epoch in range(config.epochs):
        total = 0.0
        for index in torch.randperm(len(images), generator=generator).tolist():
            image = torch.from_numpy(images[index]).float().div(255)[None]
            mask = torch.from_numpy(cells[index].astype(np.int64))
            x, target, weight = _training_tile(image, mask, weights[index], config, margin, generator)
            loss = weighted_cross_entropy(model(x[None]), target[None], None if weight is None else weight[None])
            if not math.isfinite(loss.item()):
                raise NonFiniteLossError(f"loss is {loss.item()} at step {step} (epoch {epoch}); lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
            step += 1
        log(f"epoch {epoch + 1}/{config.epochs}: mean loss {total / len(images):.4f} ({step} steps)")
        if checkpoint_dir is not None:
            save_unet(checkpoint_dir, model, config, step=step, epoch=epoch + 1)
    return model


def save_unet(directory: str | Path, model: UNet, config: SegTrainConfig, *, step: int, epoch: int,
              metrics: dict[str, float] | None = None) -> Path:
    """Checkpoint ``last`` in ``directory`` through :mod:`cnnlab.train.checkpoint`."""
    meta: dict[str, Any] = {
        "model": "unet", "step": step, "epoch": epoch, "config": asdict(config), "metrics": metrics or {},
        "model_options": {"width": model.width, "padding": model.padding, "in_chans": model.in_chans,
                          "num_classes": model.num_classes},
    }
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    return save_checkpoint(directory, "last", tensors, meta)


def load_unet(path: str | Path) -> tuple[UNet, dict[str, Any]]:
    """A U-Net and its checkpoint record from a checkpoint JSON file or folder."""
    checkpoint = load_checkpoint(path)
    if checkpoint.meta.get("model") != "unet":
        raise ValueError(f"{checkpoint.path} is not a U-Net checkpoint (model {checkpoint.meta.get('model')!r})")
    model = create_model("unet", **checkpoint.meta["model_options"])
    model.load_state_dict(checkpoint.model_state())
    return model.eval(), checkpoint.meta


def cell_probabilities(model: UNet, images: np.ndarray, *, tile: int = 388, batch_size: int = 4) -> np.ndarray:
    """(N, H, W) probabilities of the cell class (class 1) by overlap-tile inference."""
    model.eval()
    x = torch.tensor(images, dtype=torch.float32).div(255)[:, None]
    scores = predict_tiled(model, x, tile=tile, batch_size=batch_size)
    return scores.softmax(dim=1)[:, 1].numpy()


def isbi_scores(prob: np.ndarray, cells: np.ndarray) -> dict[str, float]:
    """The challenge's three errors of a stack of cell probabilities."""
    return {"pixel": pixel_error(prob, cells), "rand": rand_error(prob, cells), "warping": warping_error(prob, cells)}


def cross_validate(
    images: np.ndarray, cells: np.ndarray, config: SegTrainConfig, *, folds: int, eval_tile: int = 388,
    out_dir: str | Path | None = None, log: Callable[[str], None] = print,
) -> list[dict[str, float]]:
    """Trains one U-Net per fold and scores it on the held-out slices.

    The held-out slices are segmented by overlap-tile inference with ``eval_tile``
    output tiles (any valid size: the result does not depend on it, see tiling).

    Returns:
        One row per fold: the fold's pixel, Rand and warping errors.
    """
    rows = []
    for fold, (train_idx, val_idx) in enumerate(kfold_splits(len(images), folds)):
        log(f"fold {fold + 1}/{folds}: train on {len(train_idx)} slices, validate on {val_idx[0]}..{val_idx[-1]}")
        fold_dir = None if out_dir is None else Path(out_dir) / f"fold{fold + 1}"
        model = train_unet(images[train_idx], cells[train_idx], config, checkpoint_dir=fold_dir, log=log)
        scores = isbi_scores(cell_probabilities(model, images[val_idx], tile=eval_tile), cells[val_idx])
        log(f"fold {fold + 1}: " + ", ".join(f"{k} error {v:.4f}" for k, v in scores.items()))
        if fold_dir is not None:
            save_unet(fold_dir, model, config, step=config.epochs * len(train_idx), epoch=config.epochs, metrics=scores)
        rows.append(scores)
    return rows
