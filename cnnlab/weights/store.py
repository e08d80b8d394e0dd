"""Converted weights written as a cnnlab checkpoint, the one weights format.

``cnnlab convert`` writes a folder that reads like a run: ``OUT/checkpoints/last.json``
and its tensors file (:mod:`cnnlab.checkpoint`). So one loader,
:func:`cnnlab.train.load_model`, serves ``cnnlab eval``, ``predict``, ``export`` and
``--init-from`` for converted weights and trained runs alike. The record holds:

- ``model``: ``{"name", "num_classes", "in_chans", "kwargs"}``, the record that
  rebuilds the model (``kwargs`` include the release options);
- ``task``: ``{"name": "classification", "image_size", "zoo": {"source",
  "preprocessing"}}``: the zoo the weights came from and the input they expect,
  ``{"mean", "std", "scale", "bgr", "input_size", "resize"}``
  (:class:`cnnlab.weights.zoo.Preprocessing`);
- ``classes``: the 1000 ImageNet names for a 1000-class head, else the indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cnnlab.checkpoint import save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.weights.classes import imagenet_class_names
from cnnlab.weights.convert import build_converted
from cnnlab.weights.zoo import find_release


def convert_file(weights: str | Path | Mapping[str, torch.Tensor], source: str, name: str, out: str | Path,
                 *, overwrite: bool = False, **kwargs: Any) -> str:
    """Converts a zoo's checkpoint into the checkpoint folder ``out`` and returns the one-line report.

    Args:
        weights: the zoo's checkpoint (path or state dict).
        source: "torchvision", "timm" or "cadene".
        name: the cnnlab model to convert into.
        out: the folder to write (``out/checkpoints/last.json`` and its tensors, atomically).
        overwrite: replace a checkpoint already in ``out``; otherwise it is refused.
        **kwargs: builder options on top of the release options.
    """
    out = Path(out)
    if out.suffix:
        raise CnnlabError(f"--out names a folder (it is written like a run), got {out}")
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.json")) and not overwrite:
        raise CnnlabError(f"{out} holds a checkpoint; choose another --out or pass --overwrite")
    if source == "cnnlab":
        raise CnnlabError("convert reads a zoo's checkpoint: --source torchvision, timm or cadene")
    release = find_release(name, source)
    model, options, line = build_converted(name, weights, source, **kwargs)
    tensors = {f"model.{k}": v.detach() for k, v in model.state_dict().items()}
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CnnlabError(f"the weights hold non-finite values in {bad[len('model.'):]}; the checkpoint is damaged")
    num_classes, in_chans = options.pop("num_classes"), options.pop("in_chans")
    preprocessing = release.preprocessing.as_dict()
    names = imagenet_class_names()
    meta = {
        "step": 0,
        "model": {"name": name, "num_classes": num_classes, "in_chans": in_chans, "kwargs": options},
        "task": {"name": "classification", "image_size": [preprocessing["input_size"]] * 2,
                 "zoo": {"source": source, "preprocessing": preprocessing}},
        "classes": names if num_classes == len(names) else [str(i) for i in range(num_classes)],
    }
    path = save_checkpoint(out / "checkpoints", "last", tensors, meta)
    return f"{line}; wrote {path}"

