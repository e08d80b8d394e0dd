"""Training Kim's CNN with the paper's recipe and protocol.

Kim (2014), Section 3: Adadelta (rho 0.95, eps 1e-6; run lazily over the
embedding's rows, which gives the same updates), shuffled mini-batches of 50
(reshuffled every epoch, or Kim's code's fixed batches: :func:`epoch_batches`),
dropout 0.5, an L2 max-norm of 3 on the output layer's weight vectors, early
stopping on a dev set (the test accuracy reported is the one at the epoch with the
best dev accuracy, the later one on a tie, as in Kim's code). The vocabulary is
every word of the dataset, as in Kim's code; with pre-trained vectors, words they
lack are drawn from U[-a, a] with the pre-trained variance
(:func:`cnnlab.text.vectors.embedding_matrix`). Padding is the model's
(:mod:`cnnlab.models.textcnn`), as in Kim's code, whatever batch a sentence is in.

A run directory holds ``vocab.txt``, per fold ``fold-K/metrics.csv`` (each epoch's
loss, dev and test accuracy) and the best checkpoint ``fold-K/checkpoints/best.json``
(safetensors + JSON, written atomically by :mod:`cnnlab.train.checkpoint`), and
``results.json`` with every fold's result and history, and the mean and standard
deviation of the test accuracy.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from cnnlab.models.textcnn import PAD_ID, TextCNN
from cnnlab.text.datasets import Fold, SentenceDataset, folds
from cnnlab.text.vectors import KeyedVectors, embedding_matrix
from cnnlab.text.vocab import Vocab
from cnnlab.train.checkpoint import save_checkpoint
from cnnlab.train.loop import NonFiniteLossError
from cnnlab.train.optim import LazyAdadelta

PAD_WORD = "<pad>"
BATCHINGS = ("shuffle", "kim")


@dataclass(frozen=True)
class TextCNNConfig:
    """Kim's hyper-parameters (Section 3.1) and the run's budget."""

    variant: str = "rand"
    epochs: int = 25
    batch_size: int = 50
    rho: float = 0.95
    eps: float = 1e-6
    max_norm: float = 3.0
    dropout: float = 0.5
    embed_dim: int = 300
    widths: tuple[int, ...] = (3, 4, 5)
    maps: int = 100
    dev_fraction: float = 0.1
    patience: int | None = None
    batching: str = "shuffle"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.batching not in BATCHINGS:
            raise ValueError(f"unknown batching {self.batching!r}; choose one of {', '.join(BATCHINGS)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")


@dataclass
class FoldResult:
    """One fold: the epoch with the best dev accuracy, that accuracy, and the test accuracy then.

    ``history`` has a row per epoch: training loss, dev and test accuracy. The test
    accuracy of every epoch is recorded only to show what choosing by dev costs;
    nothing is chosen by it.
    """

    fold: int
    best_epoch: int
    dev_accuracy: float
    test_accuracy: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def build_model(
    config: TextCNNConfig, vocab: Vocab, num_classes: int, vectors: KeyedVectors | None, seed: int
) -> tuple[TextCNN, int]:
    """The model for a vocabulary; returns it and how many words had a pre-trained vector."""
    generator = torch.Generator().manual_seed(seed)
    embeddings, found = None, 0
    if config.variant != "rand":
        if vectors is None:
            raise ValueError(f"variant {config.variant!r} needs pre-trained vectors: give --vectors FILE")
        embeddings, found = embedding_matrix(vocab.words, vectors, generator=generator)
    torch.manual_seed(seed)
    model = TextCNN(
        vocab_size=len(vocab), num_classes=num_classes, variant=config.variant, embed_dim=config.embed_dim,
        embeddings=embeddings, widths=config.widths, maps=config.maps, dropout=config.dropout, sparse_grad=True,
    )
    return model, found


def collate(sentences: list[torch.Tensor]) -> torch.Tensor:
    """A batch of sentences, padded at the end to the longest (the model adds Kim's margins)."""
    return pad_sequence(sentences, batch_first=True, padding_value=PAD_ID)


def epoch_batches(
    train: np.ndarray, batch_size: int, batching: str, generator: torch.Generator
) -> Iterator[list[torch.Tensor]]:
    """Yields each epoch's mini-batches, as tensors of training indices.

    ``"shuffle"`` reshuffles the training set every epoch; the last batch may be
    smaller. ``"kim"`` is Kim's code: the set is topped up to a multiple of the batch
    size with randomly drawn repeats and cut once into fixed batches, and each epoch
    visits those batches in a new order.
    """
    train = torch.as_tensor(train)
    if batching == "kim":
        extra = (-len(train)) % batch_size
        filled = torch.cat([train, train[torch.randperm(len(train), generator=generator)[:extra]]])
        fixed = filled[torch.randperm(len(filled), generator=generator)].view(-1, batch_size)
        while True:
            yield list(fixed[torch.randperm(len(fixed), generator=generator)])
    while True:
        yield list(train[torch.randperm(len(train), generator=generator)].split(batch_size))


@torch.no_grad()
def accuracy(model: TextCNN, sentences: list[torch.Tensor], labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of sentences classified correctly (batched by similar length)."""
    model.eval()
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        x = collate([sentences[i] for i in index])
        correct += int((model(x).argmax(1) == labels[index]).sum())
    return correct / len(sentences)


def train_fold(
    model: TextCNN,
    config: TextCNNConfig,
    sentences: list[torch.Tensor],
    labels: torch.Tensor,
    fold: Fold,
    *,
    run_dir: Path | None = None,
    fold_number: int = 0,
    progress: bool = True,
) -> FoldResult:
    """Trains on ``fold.train``, keeps the weights of the best dev epoch, and tests them."""
    params = [p for p in model.parameters() if p.requires_grad]
    # Lazy Adadelta: dense Adadelta's result, at the cost of the batch's rows of the embedding.
    optimizer = LazyAdadelta(params, lr=1.0, rho=config.rho, eps=config.eps)
    generator = torch.Generator().manual_seed(config.seed + fold_number)
    pick = lambda index: ([sentences[i] for i in index], labels[index])  # noqa: E731
    dev, test = pick(fold.dev), pick(fold.test)
    best_state, best = None, (-1.0, 0)
    history: list[dict[str, float]] = []
    batches = epoch_batches(fold.train, config.batch_size, config.batching, generator)
    start, since_best = time.perf_counter(), 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        loss_sum, seen = 0.0, 0
        for index in next(batches):
            x_list, y = pick(index.tolist())
            loss = F.cross_entropy(model(collate(x_list)), y)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"non-finite loss {float(loss)} at epoch {epoch} of fold {fold_number}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model.constrain_output_norm(config.max_norm)
            loss_sum, seen = loss_sum + float(loss.detach()) * len(y), seen + len(y)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "dev_accuracy": accuracy(model, *dev),
               "test_accuracy": accuracy(model, *test), "elapsed_s": time.perf_counter() - start}
        history.append(row)
        if row["dev_accuracy"] >= best[0]:  # a tie moves to the later epoch, as in Kim's code
            best, since_best = (row["dev_accuracy"], epoch), 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        if progress:
            print(f"fold {fold_number} epoch {epoch}/{config.epochs} loss {row['train_loss']:.4f} "
                  f"dev {100 * row['dev_accuracy']:.2f}% ({row['elapsed_s']:.0f}s)", file=sys.stderr, flush=True)
        if config.patience is not None and since_best >= config.patience:
            break
    model.load_state_dict(best_state)
    test_accuracy = history[best[1] - 1]["test_accuracy"]
    result = FoldResult(fold_number, best[1], best[0], test_accuracy, time.perf_counter() - start, history)
    if run_dir is not None:
        _save_fold(run_dir / f"fold-{fold_number}", model, config, result)
    return result


def _save_fold(directory: Path, model: TextCNN, config: TextCNNConfig, result: FoldResult) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(result.history[0]))
        writer.writeheader()
        writer.writerows(result.history)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"config": asdict(config), "epoch": result.best_epoch, "step": 0,
            "metrics": {"dev_accuracy": result.dev_accuracy, "test_accuracy": result.test_accuracy}}
    save_checkpoint(directory / "checkpoints", "best", tensors, meta)


def _describe(chosen: list[tuple[int, Fold]], num_folds: int) -> str:
    first, last = chosen[0][0] + 1, chosen[-1][0] + 1
    return f"fold {first} of {num_folds} (CV)" if first == last else f"folds {first}-{last} of {num_folds} (CV)"


def run(
    dataset: SentenceDataset,
    config: TextCNNConfig,
    *,
    vectors: KeyedVectors | None = None,
    num_folds: int = 10,
    max_folds: int | None = None,
    first_fold: int = 0,
    run_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Kim's protocol on one dataset: the standard split, or ``num_folds``-fold CV.

    Args:
        dataset: from :func:`cnnlab.text.datasets.load_dataset`.
        config: the recipe.
        vectors: pre-trained vectors (any variant but ``rand``).
        num_folds: folds of cross-validation where there is no standard split.
        max_folds: run at most this many folds (to fit a time budget; the summary says so).
        first_fold: start at this fold, so that a long cross-validation can be split over several runs.
        run_dir: where the run directory is written, or None.
        progress: a line per epoch on stderr.

    Returns:
        The summary that is also written to ``results.json``: per-fold results
        (with their per-epoch history), mean and standard deviation of the test
        accuracy in %.
    """
    if vectors is not None and config.variant != "rand" and vectors.vector_size != config.embed_dim:
        config = TextCNNConfig(**{**asdict(config), "embed_dim": vectors.vector_size})
    vocab = Vocab.build(dataset.sentences, specials=(PAD_WORD,))
    sentences = [torch.from_numpy(vocab.encode(s)) for s in dataset.sentences]
    labels = torch.as_tensor(dataset.labels, dtype=torch.long)
    all_folds = folds(dataset, num_folds=num_folds, dev_fraction=config.dev_fraction, seed=config.seed)
    if not 0 <= first_fold < len(all_folds):
        raise ValueError(f"first_fold (0-based) must lie in [0, {len(all_folds)}), got {first_fold}")
    chosen = list(enumerate(all_folds))[first_fold:][: max_folds or len(all_folds)]
    out = Path(run_dir) if run_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.txt").write_text("\n".join(vocab.words) + "\n", encoding="utf-8")
    results, found = [], 0
    for k, fold in chosen:
        model, found = build_model(config, vocab, len(dataset.classes), vectors, seed=config.seed + k)
        results.append(
            train_fold(model, config, sentences, labels, fold, run_dir=out, fold_number=k, progress=progress)
        )
    tests = np.array([100 * r.test_accuracy for r in results])
    summary = {
        "dataset": dataset.name, "variant": config.variant, "config": asdict(config),
        "protocol": "standard split" if dataset.split is not None else _describe(chosen, num_folds),
        "vocab_size": len(vocab), "words_with_vectors": found,
        "test_accuracy_mean": float(tests.mean()),
        "test_accuracy_std": float(tests.std(ddof=1)) if len(tests) > 1 else None,
        "folds": [asdict(r) for r in results],
    }
    if out is not None:
        (out / "results.json").write_text(json.dumps(summary, indent=1))
    return summary
