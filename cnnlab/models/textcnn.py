"""Kim (2014): a CNN for sentence classification, in its four variants.

A sentence of token ids is embedded (300-d in the paper), convolved with filters
of widths 3, 4 and 5 (100 feature maps each), passed through ReLU and max-pooled
over time; the 300 pooled features go through dropout 0.5 to the class layer. The
variants differ only in the embedding (Section 3.1):

- ``rand``: every word vector random and trained;
- ``static``: pre-trained vectors, kept fixed;
- ``non-static``: pre-trained vectors, fine-tuned;
- ``multichannel``: two copies of the pre-trained vectors, one fixed and one
  fine-tuned. "Each filter is applied to both channels and the results are added":
  that is one convolution over the two embeddings stacked along the feature axis.

The input is a ``(batch, length)`` LongTensor of token ids, id 0 being padding
(a zero vector that is never trained); a batch of sentences of several lengths is
padded at the end with id 0. The model pads as Kim's code does: ``width - 1`` ids
before each sentence and at least ``width`` after it (``width`` the widest filter).
Kim pads every sentence to the dataset's longest plus as many again, so every
sentence but the longest has a window of padding alone, for every filter width,
and its pooled features are at least ReLU(bias); padding inside the model gives
the same windows without that fixed length. Any further padding only repeats that
window, so a sentence's prediction does not depend on its batch, and any length
>= 1 works: this is why the card's ``min_input_size`` is 1.

The paper does not give the initialisation; Kim's released code does, and it is
used here: convolution weights U[-0.01, 0.01] (the code's choice for ReLU units),
convolution biases zero, and the output layer (a logistic regression) all zero.

Dropout is the paper's (:class:`cnnlab.layers.ClassicDropout`): kept units are not
rescaled while training, and the output layer's input is scaled by 0.5 at test
time. So the output weights are the paper's ``w``, on which the max-norm
``||w|| <= 3`` acts; with PyTorch's inverted dropout the same bound would allow
weights twice as long, and Adadelta would step in another scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Proxy

from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassifierHead
from cnnlab.models.base import ImageClassifier
from cnnlab.cards import ModelCard, Paper, with_card

VARIANTS = ("rand", "static", "non-static", "multichannel")
PAD_ID = 0

KIM_2014 = Paper("Y. Kim", 2014, "Convolutional Neural Networks for Sentence Classification")

# Test accuracy (%) of Kim (2014), Table 2, by variant and dataset. SST-1/SST-2 were
# trained on phrases as well; the offline data has sentences only.
KIM_TABLE2: dict[str, dict[str, float]] = {
    "rand": {"mr": 76.1, "sst1": 45.0, "sst2": 82.7, "subj": 89.6, "trec": 91.2, "cr": 79.8, "mpqa": 83.4},
    "static": {"mr": 81.0, "sst1": 45.5, "sst2": 86.8, "subj": 93.0, "trec": 92.8, "cr": 84.7, "mpqa": 89.6},
    "non-static": {"mr": 81.5, "sst1": 48.0, "sst2": 87.2, "subj": 93.4, "trec": 93.6, "cr": 84.3, "mpqa": 89.5},
    "multichannel": {"mr": 81.1, "sst1": 47.4, "sst2": 88.1, "subj": 93.2, "trec": 92.2, "cr": 85.0, "mpqa": 89.4},
}


class MaxOverTimeConv(nn.Module):
    """Parallel 1-d convolutions of several widths, ReLU, max over time, concatenated."""

    def __init__(self, in_features: int, widths: tuple[int, ...], maps: int) -> None:
        super().__init__()
        self.widths = widths
        self.convs = nn.ModuleList(nn.Conv1d(in_features, maps, w) for w in widths)
        self.num_features = maps * len(widths)
        self.structure = f"widths {','.join(map(str, widths))} x {maps} maps, ReLU, max-over-time"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, features, length) -> (batch, maps * len(widths))."""
        return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)


class TextCNN(ImageClassifier):
    """Kim's sentence CNN; see the module docstring for the variants.

    Args:
        vocab_size: rows of the embedding, padding (id 0) included.
        num_classes: classes of the output layer.
        variant: one of :data:`VARIANTS`.
        embed_dim: word-vector size; taken from ``embeddings`` when given.
        embeddings: pre-trained ``(vocab_size, embed_dim)`` vectors, required by
            every variant but ``rand`` (build them with
            :func:`cnnlab.text.vectors.embedding_matrix`).
        widths: filter widths.
        maps: feature maps per width.
        dropout: dropout rate before the output layer.
        rand_scale: ``rand`` draws vectors from U[-a, a] with this ``a``; 0.25 in
            Kim's code, which gives about the variance of the word2vec vectors.
        sparse_grad: give the trained embedding sparse gradients (rows of the
            batch's words only), for an optimiser that takes them such as
            :class:`cnnlab.train.optim.LazyAdadelta`.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        variant: str = "rand",
        embed_dim: int = 300,
        embeddings: torch.Tensor | None = None,
        widths: tuple[int, ...] = (3, 4, 5),
        maps: int = 100,
        dropout: float = 0.5,
        rand_scale: float = 0.25,
        sparse_grad: bool = False,
    ) -> None:
        super().__init__(in_chans=1, num_classes=num_classes)
        if variant not in VARIANTS:
            raise CnnlabError(f"unknown textcnn variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if variant != "rand" and embeddings is None:
            raise CnnlabError(f"textcnn variant {variant!r} needs pre-trained vectors: pass embeddings=")
        if embeddings is not None:
            if embeddings.dim() != 2 or embeddings.shape[0] != vocab_size:
                raise CnnlabError(
                    f"embeddings must have shape (vocab_size={vocab_size}, dim), got {tuple(embeddings.shape)}"
                )
            embed_dim = embeddings.shape[1]
        self.variant = variant
        self.vocab_size = vocab_size
        self.embed = self._embedding(vocab_size, embed_dim, embeddings, rand_scale, frozen=variant == "static")
        self.embed.sparse = sparse_grad
        channels = 2 if variant == "multichannel" else 1
        self.static_embed = (
            self._embedding(vocab_size, embed_dim, embeddings, rand_scale, frozen=True) if channels == 2 else None
        )
        self.features = MaxOverTimeConv(channels * embed_dim, widths, maps)
        self.head = ClassifierHead(
            self.features.num_features, num_classes, dropout, pool=False, classic_dropout=True
        )
        self._init_as_kim()

    @torch.no_grad()
    def _init_as_kim(self) -> None:
        """Kim's code's initialisation (see the module docstring)."""
        for conv in self.features.convs:
            conv.weight.uniform_(-0.01, 0.01)
            conv.bias.zero_()
        self.head.fc.weight.zero_()
        self.head.fc.bias.zero_()

    @staticmethod
    def _embedding(
        vocab_size: int, dim: int, vectors: torch.Tensor | None, scale: float, *, frozen: bool
    ) -> nn.Embedding:
        embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        with torch.no_grad():
            if vectors is None:
                embed.weight.uniform_(-scale, scale)
            else:
                embed.weight.copy_(vectors)
            embed.weight[PAD_ID].zero_()
        embed.weight.requires_grad_(not frozen)
        return embed

    def example_input(
        self, input_size: int, *, batch_size: int = 1, device: str | torch.device = "cpu"
    ) -> torch.Tensor:
        """A batch of random token ids of length ``input_size``, padding never drawn."""
        if str(device) == "meta":
            return torch.empty(batch_size, input_size, dtype=torch.long, device="meta")
        return torch.randint(1, self.vocab_size, (batch_size, input_size), device=device)

    def check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        if isinstance(x, Proxy):  # symbolic tracing (torch.fx): no values to check
            return
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor of token ids, got {type(x).__name__}")
        if x.dim() != 2:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.dim() == 1 else ""
            raise CnnlabError(f"{name} expects a 2-D batch (N, length) of token ids, got shape {tuple(x.shape)}{hint}")
        if x.dtype != torch.long:
            raise CnnlabError(f"{name} expects int64 token ids, got {x.dtype} (encode words with a Vocab)")
        if x.shape[1] < 1:
            raise CnnlabError(f"{name} needs sentences of at least 1 token, got length 0")
        if not x.is_meta and x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise CnnlabError(f"{name} token ids must lie in [0, {self.vocab_size}), got [{x.min()}, {x.max()}]")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> pooled features (N, maps * widths)."""
        # Kim's padding: width - 1 ids before the sentence and at least width after it, so
        # every sentence has a window of padding alone, whatever else pads its batch.
        width = max(self.features.widths)
        x = F.pad(x, (width - 1, width), value=PAD_ID)
        emb = self.embed(x)
        if self.static_embed is not None:
            emb = torch.cat([self.static_embed(x), emb], dim=2)
        return self.features(emb.transpose(1, 2))

    @torch.no_grad()
    def constrain_output_norm(self, max_norm: float = 3.0) -> None:
        """Rescales each class's weight vector to L2 norm ``max_norm`` where it is larger (Kim: s = 3)."""
        fc = self.head.fc
        if isinstance(fc, nn.Linear):
            fc.weight.copy_(torch.renorm(fc.weight, p=2, dim=0, maxnorm=max_norm))


@with_card(
    ModelCard(
        paper=KIM_2014,
        task="text",
        input_size=20,
        min_input_size=1,
        num_classes=2,
        in_chans=1,
        errors={"mr": 100 - KIM_TABLE2["rand"]["mr"], "trec": 100 - KIM_TABLE2["rand"]["trec"]},
        source="Table 2 (CNN-rand test error, %); Table 1: MR average length 20, |V| = 18,765",
        notes=(
            "input_size is MR's average sentence length; params depend on the vocabulary "
            "(18,765 words for MR by default); variant= rand|static|non-static|multichannel, "
            "the last three with embeddings= from a word2vec file. Shorter sentences than the "
            "widest filter are padded."
        ),
    )
)
def textcnn(*, num_classes: int, in_chans: int, vocab_size: int = 18766, **kwargs) -> TextCNN:
    """Kim's CNN; ``vocab_size`` counts padding (MR's 18,765 words + 1 by default)."""
    if in_chans != 1:
        raise CnnlabError(f"textcnn takes one channel of token ids, got in_chans={in_chans}")
    return TextCNN(vocab_size=vocab_size, num_classes=num_classes, **kwargs)
