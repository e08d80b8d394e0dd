"""Classification losses: cross-entropy with label smoothing and auxiliary classifiers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError


def classification_loss(
    output: torch.Tensor | tuple[torch.Tensor, ...],
    target: torch.Tensor,
    *,
    aux_weights: Sequence[float] = (),
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the main logits plus the weighted auxiliary losses.

    Models with auxiliary classifiers (GoogLeNet: two, weight 0.3 each, Szegedy et
    al. 2015 section 5; Inception-v3: one) return ``(logits, aux_1, ...)`` in
    training mode and expose the weights as ``model.aux_weights``. Label smoothing
    (Szegedy et al. 2016, section 7) applies to every head. The loss is computed
    in float32 so bf16/fp16 autocast does not round it.

    Args:
        output: logits (N, K), or a tuple of main and auxiliary logits.
        target: class indices (N,).
        aux_weights: one weight per auxiliary output.
        label_smoothing: epsilon of the smoothed targets.

    Returns:
        The total loss and the main logits.

    Raises:
        ValueError: the number of auxiliary outputs and of weights differ.
    """
    main, *aux = output if isinstance(output, tuple) else (output,)
    if len(aux) != len(aux_weights):
        raise CnnlabError(
            f"the model returned {len(aux)} auxiliary output(s) but has {len(aux_weights)} aux weight(s); "
            "set model.aux_weights to one weight per auxiliary classifier"
        )
    loss = F.cross_entropy(main.float(), target, label_smoothing=label_smoothing)
    for weight, logits in zip(aux_weights, aux):
        loss = loss + weight * F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    return loss, main
