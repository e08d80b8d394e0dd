"""The interface every image classifier offers, its input checks, and the stage-list network."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.fx import Proxy
from torch.func import functional_call

from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassifierHead, he_init
from cnnlab.layers.inception import AuxClassifier


def check_image_batch(x: torch.Tensor, *, name: str, in_chans: int, min_size: int,
                      weights_dtype: torch.dtype | None = None) -> None:
    """Raises a one-line ValueError saying what to do if ``x`` is not a valid batch.

    ``weights_dtype`` is the model's: outside autocast the input must match it (a
    float64 batch into float32 weights fails deep inside the first convolution).

    Under symbolic tracing (``torch.fx``, torchvision's ``create_feature_extractor``)
    ``x`` is a Proxy without values, and nothing is checked.
    """
    if isinstance(x, Proxy):
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise CnnlabError(f"{name} expects a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise CnnlabError(f"{name} expects a floating-point tensor, got {x.dtype} (convert with x.float() / 255)")
    if weights_dtype is not None and x.dtype != weights_dtype and not torch.is_autocast_enabled(x.device.type):
        raise CnnlabError(f"{name} has {weights_dtype} weights and got a {x.dtype} batch: convert the batch "
                          f"(x.to({weights_dtype})) or the model (model.to({x.dtype}))")
    if x.shape[0] == 0:
        raise CnnlabError(f"{name} got an empty batch (N = 0): nothing to compute")
    if x.shape[1] != in_chans:
        raise CnnlabError(
            f"{name} expects {in_chans} input channels, got {x.shape[1]} "
            f"(build it with in_chans={x.shape[1]} or convert the images)"
        )
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise CnnlabError(f"{name} needs inputs of at least {min_size}x{min_size}, got {h}x{w}")


def _weights_dtype(model: nn.Module) -> torch.dtype | None:
    return next((p.dtype for p in model.parameters()), None)


class FeatureInfo(Sequence[dict[str, Any]]):
    """Stages' channels and reductions as timm gives them: a list of ``{"index", "module",
    "num_chs", "reduction"}`` dicts, with timm's ``channels()``, ``reduction()`` and
    ``module_name()``; the same object on a classifier and on its features-only form."""

    def __init__(self, stages: list[dict[str, Any]]) -> None:
        self.stages = stages

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.stages[index]

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return repr(self.stages)

    def channels(self) -> list[int]:
        """Each stage's output channels."""
        return [stage["num_chs"] for stage in self.stages]

    def reduction(self) -> list[int]:
        """Each stage's input side / output side."""
        return [stage["reduction"] for stage in self.stages]

    def module_name(self) -> list[str]:
        """Each stage's name in ``stage_names``."""
        return [stage["module"] for stage in self.stages]


class ImageClassifier(nn.Module):
    """Base of every classifier: named stages run in order, then ``self.head``.

    Subclasses add their stages with :meth:`add_stage` (in execution order), then set
    ``self.head`` (a :class:`ClassifierHead` by default). Only the listed stages run
    in :meth:`forward_features`, so registering another submodule (a hook, a probe)
    cannot change the forward pass. ``min_input_size`` is set from the model card
    when the model is built through the registry.
    """

    min_input_size: int = 1

    def __init__(self, *, in_chans: int, num_classes: int) -> None:
        super().__init__()
        if in_chans < 1:
            raise CnnlabError(f"in_chans must be >= 1, got {in_chans}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.stage_names: tuple[str, ...] = ()

    def add_stage(self, name: str, module: nn.Module) -> None:
        """Registers ``module`` as the next stage of the main path."""
        self.add_module(name, module)
        self.stage_names += (name,)

    def stages(self) -> Iterator[tuple[str, nn.Module]]:
        """The main path's stages, in execution order."""
        return ((name, getattr(self, name)) for name in self.stage_names)

    def stage_indices(self, indices: int | Sequence[int] | None) -> list[int]:
        """Positions in ``stage_names``: all for None, the last n for an int n, or the
        given ones (negative counting from the end), sorted."""
        count = len(self.stage_names)
        if indices is None:
            return list(range(count))
        if isinstance(indices, int):
            if not 0 < indices <= count:
                raise CnnlabError(f"{type(self).__name__} has {count} stages; ask for the last 1 to {count}")
            return list(range(count - indices, count))
        wrong = [i for i in indices if not -count <= i < count]
        if wrong:
            raise CnnlabError(f"stage index {wrong[0]} is out of range: {type(self).__name__} has {count} stages "
                              f"({', '.join(self.stage_names)})")
        return sorted({i % count for i in indices})

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None, *,
                              stop_early: bool = False,
                              intermediates_only: bool = False) -> list[torch.Tensor] | tuple[torch.Tensor, list]:
        """The outputs of the selected stages, as timm's ``forward_intermediates``.

        Args:
            indices: see :meth:`stage_indices`; every stage by default.
            stop_early: stop after the last selected stage (the returned features
                are then its output).
            intermediates_only: return the list alone (and stop early).

        Returns:
            ``(features, [stage outputs])``, ``features`` being what
            :meth:`forward_features` returns, or the list alone.
        """
        self.check_input(x)
        take = self.stage_indices(indices)
        last = take[-1] if take else -1
        outputs = []
        for index, (_, stage) in enumerate(self.stages()):
            x = stage(x)
            if index in take:
                outputs.append(x)
            if index == last and (stop_early or intermediates_only):
                break
        return outputs if intermediates_only else (x, outputs)

    @property
    def feature_info(self) -> FeatureInfo:
        """Each stage's name, output channels and reduction (input side / output side), as
        timm's ``model.feature_info``.

        Measured with a forward on the meta device (no weights are copied) at the card's
        input size; reductions are rounded to powers of two, as timm reports them
        (Inception's 299 -> 35 grid is a reduction of 8).
        """
        size = getattr(getattr(self, "card", None), "input_size", None) or 224
        shapes: dict[str, torch.Size] = {}
        hooks = [stage.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape))
                 for name, stage in self.stages()]
        meta = {k: torch.empty_like(v, device="meta") for k, v in [*self.named_parameters(), *self.named_buffers()]}
        training = self.training
        try:
            with torch.no_grad():
                functional_call(self.eval(), meta, (torch.empty(1, self.in_chans, size, size, device="meta"),),
                                strict=False)
        finally:
            self.train(training)
            for hook in hooks:
                hook.remove()
        return FeatureInfo([{"index": i, "module": name, "num_chs": shapes[name][1],
                             "reduction": 2 ** round(math.log2(size / shapes[name][-1]))}
                            for i, name in enumerate(self.stage_names)])

    def get_classifier(self) -> nn.Module:
        """The class layer (timm's name for it), e.g. to read or replace its weights."""
        return self.head.classifier

    @property
    def num_features(self) -> int:
        """Width of the pooled features that feed the class layer."""
        return self.head.num_features

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, name=type(self).__name__, in_chans=self.in_chans, min_size=self.min_input_size,
                          weights_dtype=_weights_dtype(self))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the stages listed in ``stage_names``, in order."""
        for _, stage in self.stages():
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the class layer, e.g. to fine-tune on another dataset."""
        self.head.reset(num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


class InceptionNet(ImageClassifier):
    """Named stages in order, optional auxiliary classifiers, and a pooled linear head.

    The network of every Inception family (GoogLeNet, BN-Inception, Inception-v3, -v4,
    the Inception-ResNets): its stages are the rows of the paper's table, so
    ``cnnlab summary`` prints it.

    Auxiliary-classifier contract (the trainer relies on it): in training mode a net
    with auxiliary heads returns ``(logits, aux_1, ...)`` in stage order and
    ``model.aux_weights`` holds each auxiliary loss weight; in eval mode, or built
    with ``aux_logits=False``, it returns the logits alone. ``forward_features`` and
    ``forward_head`` are always the main path.

    Args:
        name: the registered name, used in error messages.
        stages: the paper's rows in execution order; each may carry ``structure``.
        num_features: channels of the last stage.
        dropout: before the class layer.
        aux: auxiliary classifiers keyed by the stage whose output they read.
        aux_weights: the loss weight of each auxiliary classifier, in stage order.
    """

    def __init__(self, *, name: str, stages: dict[str, nn.Module], num_features: int, in_chans: int, num_classes: int,
                 dropout: float = 0.0, aux: dict[str, AuxClassifier] | None = None,
                 aux_weights: tuple[float, ...] = ()) -> None:
        super().__init__(in_chans=in_chans, num_classes=num_classes)
        self.name = name
        aux = aux or {}
        unknown = set(aux) - set(stages)
        if unknown:
            raise CnnlabError(f"auxiliary heads on unknown stages: {sorted(unknown)}")
        if len(aux_weights) != len(aux):
            raise CnnlabError(f"need one loss weight per auxiliary head, got {len(aux_weights)} for {len(aux)}")
        for stage_name, stage in stages.items():
            self.add_stage(stage_name, stage)
        self.aux = nn.ModuleDict(aux)
        self.aux_weights = tuple(aux_weights)
        self.head = ClassifierHead(num_features, num_classes, dropout)
        # He et al. (2015) init for every conv, BN to identity, FC layers N(0, 0.01); the
        # papers' own schemes (DistBelief, TF-slim's variance scaling) are variants of it.
        he_init(self)

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, name=self.name, in_chans=self.in_chans, min_size=self.min_input_size,
                          weights_dtype=_weights_dtype(self))

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the class layer of the head and of every auxiliary head."""
        super().reset_classifier(num_classes)
        for head in self.aux.values():
            head.reset(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        self.check_input(x)
        if not (self.training and len(self.aux)):
            return self.forward_head(self.forward_features(x))
        aux_logits = []
        for name, stage in self.stages():
            x = stage(x)
            if name in self.aux:
                aux_logits.append(self.aux[name](x))
        return (self.forward_head(x), *aux_logits)


class FeatureExtractor(nn.Module):
    """A classifier's stage outputs, as timm's ``features_only=True`` models give them.

    ``forward`` returns the feature maps of the stages at ``out_indices`` (positions
    in the model's ``stage_names``); ``feature_info`` says their channels and
    reductions. The classifier head and any auxiliary heads are dropped.
    """

    def __init__(self, model: ImageClassifier, out_indices: int | Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(model, ImageClassifier) or not model.stage_names:
            raise CnnlabError(f"features_only needs an image classifier with stages; {type(model).__name__} has none")
        self.out_indices = model.stage_indices(out_indices)
        info = model.feature_info
        self.feature_info = FeatureInfo([info[i] for i in self.out_indices])
        model.head = nn.Identity()
        if isinstance(getattr(model, "aux", None), nn.ModuleDict):
            model.aux = nn.ModuleDict()
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(x, self.out_indices, intermediates_only=True)


__all__ = ["ClassifierHead", "FeatureExtractor", "FeatureInfo", "ImageClassifier", "InceptionNet", "check_image_batch"]
