"""Converted weights as one safetensors file that carries what it needs to be used.

The file's safetensors metadata (strings) holds, as JSON:

- ``model``: ``{"name", "num_classes", "in_chans", "kwargs"}``, the record that
  rebuilds the model (``kwargs`` include the release options);
- ``source``: the zoo the weights came from;
- ``preprocessing``: ``{"mean", "std", "scale", "bgr", "input_size", "resize"}``
  (see :class:`cnnlab.weights.zoo.Preprocessing`);
- ``classes``: ``"imagenet-1k"`` when the classifier has the 1000 ImageNet classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.weights.classes import IMAGENET_1K, imagenet_class_names
from cnnlab.weights.convert import build_converted
from cnnlab.weights.zoo import find_release

# The keys a converted file must carry (see the module docstring).
METADATA_KEYS = ("model", "source", "preprocessing")


def convert_file(weights: str | Path | Mapping[str, torch.Tensor], source: str, name: str, out: str | Path,
                 *, overwrite: bool = False, **kwargs: Any) -> str:
    """Converts a zoo's checkpoint into ``out`` (safetensors) and returns the one-line report.

    Args:
        weights: the zoo's checkpoint (path or state dict).
        source: "torchvision", "timm" or "cadene".
        name: the cnnlab model to convert into.
        out: the ``.safetensors`` file to write (atomically).
        overwrite: replace an existing ``out``; otherwise an existing file is refused.
        **kwargs: builder options on top of the release options.
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise CnnlabError(f"--out must end in .safetensors, got {out}")
    if out.exists() and not overwrite:
        raise CnnlabError(f"{out} exists; choose another --out or pass --overwrite")
    if source == "cnnlab":
        raise CnnlabError("convert reads a zoo's checkpoint: --source torchvision, timm or cadene")
    release = find_release(name, source)
    model, options, line = build_converted(name, weights, source, **kwargs)
    record = {"name": name, "num_classes": options.pop("num_classes"), "in_chans": options.pop("in_chans"),
              "kwargs": options}
    metadata = {"model": json.dumps(record), "source": json.dumps(source),
                "preprocessing": json.dumps(release.preprocessing.as_dict())}
    if record["num_classes"] == len(imagenet_class_names()):
        metadata["classes"] = json.dumps(IMAGENET_1K)
    _write(model, metadata, out)
    return f"{line}; wrote {out}"


def _write(model: nn.Module, metadata: dict[str, str], out: Path) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CnnlabError(f"the weights hold non-finite values in {bad}; the checkpoint is damaged")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, save(tensors, metadata=metadata))


def load_converted(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A model written by ``cnnlab convert``, in eval mode, and what using it needs.

    Returns:
        The model and ``{"model": record, "source", "preprocessing": {...},
        "classes": [names] or None}``; ``classes`` holds the 1000 ImageNet names
        when the file says ``"imagenet-1k"``.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"converted weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except SafetensorError as err:
        raise CnnlabError(f"{path} is not a safetensors file ({err})") from err
    missing = [k for k in METADATA_KEYS if k not in metadata]
    if missing:
        raise CnnlabError(f"{path} has no {missing[0]!r} record: it was not written by `cnnlab convert`")
    try:
        info = {key: json.loads(metadata[key]) for key in (*METADATA_KEYS, "classes") if key in metadata}
    except json.JSONDecodeError as err:
        raise CnnlabError(f"{path}: its metadata is not valid JSON ({err})") from err
    record = info["model"]
    model, _, _ = build_converted(record["name"], path, "cnnlab", num_classes=record["num_classes"],
                                  in_chans=record["in_chans"])
    info["classes"] = imagenet_class_names() if info.get("classes") == IMAGENET_1K else None
    return model.eval(), info
