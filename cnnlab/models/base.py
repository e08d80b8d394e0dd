"""The interface every image classifier offers, and its input checks."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers import ClassifierHead


def check_image_batch(x: torch.Tensor, *, name: str, in_chans: int, min_size: int) -> None:
    """Raises a one-line ValueError saying what to do if ``x`` is not a valid batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(f"{name} expects a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects a floating-point tensor, got {x.dtype} (convert with x.float() / 255)")
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{name} expects {in_chans} input channels, got {x.shape[1]} "
            f"(build it with in_chans={x.shape[1]} or convert the images)"
        )
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise ValueError(f"{name} needs inputs of at least {min_size}x{min_size}, got {h}x{w}")


class ImageClassifier(nn.Module):
    """Base of every classifier: a feature extractor followed by ``self.head``.

    Subclasses register their stages in execution order, then ``self.head`` (a
    :class:`ClassifierHead` by default). ``min_input_size`` is set from the model
    card when the model is built through the registry.
    """

    min_input_size: int = 1

    def __init__(self, *, in_chans: int, num_classes: int) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        self.in_chans = in_chans
        self.num_classes = num_classes

    @property
    def num_features(self) -> int:
        """Width of the pooled features that feed the class layer."""
        return self.head.num_features

    def check_input(self, x: torch.Tensor) -> None:
        check_image_batch(x, name=type(self).__name__, in_chans=self.in_chans, min_size=self.min_input_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the children in the order they were registered, up to the head.

        Families whose stages are a plain chain (ResNet, VGG, AlexNet, DenseNet)
        register them in order and need nothing more; others override this.
        """
        for name, module in self.named_children():
            if name == "head":
                break
            x = module(x)
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


__all__ = ["ClassifierHead", "ImageClassifier", "check_image_batch"]
