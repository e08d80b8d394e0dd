"""Converting a zoo's state dict into a cnnlab model, exactly.

The zoos and cnnlab register a network's layers in the same order wherever the
architectures agree (the release options make sure they do), so the conversion
walks both state dicts module by module, in order, and checks every shape. On the
way it makes the exact changes the zoos' layouts need:

- key renaming (implied by the walk);
- a conv bias in front of a BN (Caffe's BN-Inception, torchvision's VGG-BN) folds
  into the BN's running mean: BN(Wx + b) with mean mu is BN(Wx) with mean mu - b;
- a BN epsilon that differs from the built model's folds into the running variance
  (var + eps_zoo = (var + eps_zoo - eps) + eps);
- a 1x1 convolution (the SE nets' FC layers in Caffe) is re-laid out as a linear layer.

A state dict of another architecture or source stops the walk at the first key or
shape that does not fit, with a one-line :class:`~cnnlab.errors.CnnlabError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.registry import model_builder
from cnnlab.weights.zoo import Release, find_release

log = logging.getLogger("cnnlab.weights")

TORCH_SUFFIXES = (".pth", ".pt", ".bin")  # PyTorch's zip format; .bin is what the Hugging Face hub names it


@dataclass
class Conversion:
    """What a conversion did, for the one-line report."""

    tensors: int = 0
    biases_folded: int = 0
    eps_folded: int = 0
    relaid: int = 0
    aux_dropped: int = 0

    def describe(self) -> str:
        parts = [f"{self.tensors} tensors mapped by position"]
        if self.biases_folded:
            parts.append(f"{self.biases_folded} conv biases folded into BN means")
        if self.eps_folded:
            parts.append(f"{self.eps_folded} BN epsilons folded into the variances")
        if self.relaid:
            parts.append(f"{self.relaid} 1x1 convs re-laid out as linear layers")
        if self.aux_dropped:
            parts.append(f"{self.aux_dropped} auxiliary-head tensors dropped (aux_logits=False)")
        return ", ".join(parts)


def read_state_dict(weights: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a state dict (file or mapping).

    ``.pth``/``.pt``/``.bin`` files are read with ``torch.load(..., weights_only=True)``:
    a file that would run code on load is refused.
    """
    if isinstance(weights, Mapping):
        return _tensors_only(dict(weights), "the weights dict")
    path = Path(weights)
    if not path.is_file():
        raise CnnlabError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix not in TORCH_SUFFIXES:
        raise CnnlabError(f"{path}: give a .safetensors, .pth, .pt or .bin state dict")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling fails with many types; each means "not a plain state dict"
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        detail = f" (it holds {found.group(1)})" if found else ""
        raise CnnlabError(f"{path} is not a plain state dict that loads without running code{detail}; "
                          "save model.state_dict() or convert it to safetensors") from err
    return _tensors_only(_unwrap(loaded), str(path))


def _unwrap(loaded: Any) -> Any:
    # Training scripts often save {"state_dict": ...} or {"model": ...} around the weights.
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                return loaded[key]
    return loaded


def _tensors_only(sd: Any, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(sd, dict) or not sd:
        raise CnnlabError(f"{what} is not a state dict (a non-empty mapping of names to tensors)")
    bad = next((k for k, v in sd.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CnnlabError(f"{what}: {bad!r} is a {type(sd[bad]).__name__}, not a tensor")
    # DataParallel checkpoints prefix every key with "module.".
    if all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd


def _groups(sd: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The state dict as (module prefix, {leaf name: value}), in order of first appearance."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in sd.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    return list(groups.items())


def _key(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def _fit(value: torch.Tensor, target: torch.Tensor, src_key: str, dst_key: str, what: str,
         report: Conversion) -> torch.Tensor:
    if tuple(value.shape) == tuple(target.shape):
        return value
    # Only a 1x1 convolution and a linear layer hold the same weights in two layouts; a
    # 1x7 kernel is never reshaped into a 7x1 one (that is another network).
    if value.dim() == 4 and target.dim() == 2 and tuple(value.shape) == (*target.shape, 1, 1):
        report.relaid += 1
        return value.reshape(target.shape)
    raise CnnlabError(f"{what}: {src_key} has shape {tuple(value.shape)} where cnnlab's {dst_key} needs "
                      f"{tuple(target.shape)} (another architecture, or another source?)")


def map_state_dict(source: Mapping[str, torch.Tensor], model: nn.Module, release: Release, what: str,
                   report: Conversion) -> dict[str, torch.Tensor]:
    """The source's tensors under the model's keys, with the exact folds described above."""
    src = _groups(source)
    dst = _groups(model.state_dict())
    out: dict[str, torch.Tensor] = {}
    pending_bias: tuple[str, torch.Tensor] | None = None
    for index, (dprefix, dleaves) in enumerate(dst):
        first = _key(dprefix, next(iter(dleaves)))
        if index >= len(src):
            raise CnnlabError(f"{what}: the state dict ends where cnnlab's {first} comes (a smaller architecture?)")
        sprefix, sleaves = src[index]
        is_bn = "running_mean" in dleaves
        if pending_bias is not None and not is_bn:
            raise CnnlabError(f"{what}: {pending_bias[0]} has no BN after it in cnnlab's model to fold into")
        extra = set(sleaves) - set(dleaves)
        missing = set(dleaves) - set(sleaves) - ({"num_batches_tracked"} if is_bn else set())
        if extra == {"bias"} and not missing and index + 1 < len(dst) and "running_mean" in dst[index + 1][1]:
            pending_bias = (_key(sprefix, "bias"), sleaves["bias"])
        elif extra or missing:
            leaf = sorted(extra or missing)[0]
            where = _key(sprefix, leaf) if extra else _key(dprefix, leaf)
            raise CnnlabError(f"{what}: {_key(sprefix, next(iter(sleaves)))} does not fit cnnlab's {first} "
                              f"({where} has no counterpart)")
        for leaf, target in dleaves.items():
            dkey = _key(dprefix, leaf)
            if leaf not in sleaves:  # num_batches_tracked, absent from older checkpoints
                out[dkey] = torch.zeros((), dtype=torch.long)
                continue
            value = _fit(sleaves[leaf], target, _key(sprefix, leaf), dkey, what, report)
            out[dkey] = value.to(target.dtype) if value.is_floating_point() else value
            report.tensors += 1
        if is_bn:
            _fold_bn(out, dprefix, model.get_submodule(dprefix), release.bn_eps, pending_bias, report)
            pending_bias = None
    if len(src) > len(dst):
        extra_key = _key(src[len(dst)][0], next(iter(src[len(dst)][1])))
        raise CnnlabError(f"{what}: {extra_key} has no place in cnnlab's model (a larger architecture?)")
    return out


def _fold_bn(out: dict[str, torch.Tensor], prefix: str, bn: nn.Module, source_eps: float,
             bias: tuple[str, torch.Tensor] | None, report: Conversion) -> None:
    mean_key, var_key = _key(prefix, "running_mean"), _key(prefix, "running_var")
    if bias is not None:
        out[mean_key] = out[mean_key] - bias[1].to(out[mean_key].dtype)
        report.biases_folded += 1
    if abs(bn.eps - source_eps) > 1e-12:
        out[var_key] = out[var_key] + (source_eps - bn.eps)
        report.eps_folded += 1


def _arrange_aux(source: dict[str, torch.Tensor], release: Release, keep: bool,
                 report: Conversion) -> dict[str, torch.Tensor]:
    """Moves the auxiliary head's tensors to the end (before the last module, the head), or drops them."""
    if release.aux_prefix is None:
        return source
    aux = {k: v for k, v in source.items() if k.startswith(release.aux_prefix)}
    rest = [(k, v) for k, v in source.items() if not k.startswith(release.aux_prefix)]
    if not keep:
        report.aux_dropped = len(aux)
        return dict(rest)
    head_prefix = rest[-1][0].rpartition(".")[0]
    body = [(k, v) for k, v in rest if k.rpartition(".")[0] != head_prefix]
    head = [(k, v) for k, v in rest if k.rpartition(".")[0] == head_prefix]
    return dict(body + list(aux.items()) + head)


def _check_source(source: Mapping[str, torch.Tensor], release: Release, name: str, zoo: str) -> None:
    first = next(iter(source))
    if first != release.first_key:
        raise CnnlabError(f"not a {zoo} {name} state dict: it starts with {first!r}, {zoo}'s starts with "
                          f"{release.first_key!r} (check weights_source and the model name)")


def _size_options(source: Mapping[str, torch.Tensor], kwargs: dict[str, Any]) -> dict[str, Any]:
    """num_classes and in_chans read from the first and last weights, unless given."""
    sizes = dict(kwargs)
    weights = [v for k, v in source.items() if k.endswith("weight") and v.dim() >= 2]
    if weights:
        sizes.setdefault("in_chans", weights[0].shape[1])
        sizes.setdefault("num_classes", weights[-1].shape[0])
    return sizes


def build_converted(name: str, weights: str | Path | Mapping[str, torch.Tensor], source: str,
                    **kwargs: Any) -> tuple[nn.Module, dict[str, Any], str]:
    """Builds ``name`` with a zoo's weights.

    Returns:
        The model (in train mode, as ``create_model`` returns models), the builder
        options it was built with (release options included), and the one-line report.
    """
    if source != "cnnlab" and not isinstance(weights, Mapping) and Path(weights).suffix == ".safetensors":
        # safetensors stores tensors sorted by name, which loses the module order the walk relies on.
        raise CnnlabError(f"{weights}: a zoo's safetensors file keeps no layer order; give its .pth/.bin "
                          "checkpoint (e.g. pytorch_model.bin on the Hugging Face hub) or a state dict")
    tensors = read_state_dict(weights)
    if source == "cnnlab":
        return _load_native(name, tensors, kwargs)
    release = find_release(name, source)
    _check_source(tensors, release, name, source)
    options = {**release.options, **_size_options(tensors, kwargs)}
    report = Conversion()
    if release.aux_prefix is not None:
        options.setdefault("aux_logits", any(k.startswith(release.aux_prefix) for k in tensors))
        tensors = _arrange_aux(tensors, release, options["aux_logits"], report)
    with torch.device("meta"):
        model = model_builder(name)(**options)
    converted = map_state_dict(tensors, model, release, f"{source} weights for {name}", report)
    _load_exactly(model, converted)
    set_options = ", ".join(f"{k}={v!r}" for k, v in release.options.items())
    line = (f"{name}: loaded {source} weights ({report.describe()})"
            + (f"; release options {set_options}" if set_options else ""))
    log.info(line)
    return model, options, line


def _load_native(name: str, tensors: dict[str, torch.Tensor], kwargs: dict[str, Any]
                 ) -> tuple[nn.Module, dict[str, Any], str]:
    """A bare cnnlab state dict: keys as they are. It needs the options it was built with
    (safetensors stores keys sorted, so none can be inferred); a checkpoint, converted
    or trained, is read with :func:`cnnlab.train.load_model`, which knows them."""
    with torch.device("meta"):
        model = model_builder(name)(**kwargs)
    _load_exactly(model, tensors)
    line = f"{name}: loaded {len(tensors)} cnnlab tensors"
    log.info(line)
    return model, kwargs, line


def _load_exactly(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    for key, target in expected.items():
        if key not in tensors:
            raise CnnlabError(f"the weights have no {key} (another architecture?)")
        if tuple(tensors[key].shape) != tuple(target.shape):
            raise CnnlabError(f"{key} has shape {tuple(tensors[key].shape)} in the weights, the model needs "
                              f"{tuple(target.shape)}")
    unexpected = next((k for k in tensors if k not in expected), None)
    if unexpected is not None:
        raise CnnlabError(f"the weights have {unexpected}, which the model has not (another architecture?)")
    model.load_state_dict({k: v.contiguous() for k, v in tensors.items()}, strict=True, assign=True)
    left = next((n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta), None)
    if left is not None:  # a tensor outside the state dict: a bug in a model file, not the user's doing
        raise RuntimeError(f"{left} stayed on the meta device after loading")
