"""Kim's sentence CNN as a task of the one Trainer: the paper's recipe and protocol.

Kim (2014), Section 3: Adadelta (rho 0.95, eps 1e-6; ``lazy_adadelta`` runs it
over the embedding's rows only, with the same updates), shuffled mini-batches of
50 (reshuffled every epoch, or Kim's code's fixed batches: ``batching: kim``),
dropout 0.5, an L2 max-norm of 3 on the output layer's weight vectors (the
after-step hook), early stopping on a dev set: ``best`` is chosen on
``dev_accuracy`` (a tie moves to the later epoch, as in Kim's code) and the
reported test accuracy is the best checkpoint's. The vocabulary is every word of
the dataset, as in Kim's code; with pre-trained vectors, words they lack are drawn
from U[-a, a] with the pre-trained variance
(:func:`cnnlab.text.vectors.embedding_matrix`). Datasets without a standard split
(MR, Subj, CR, MPQA) are run as k-fold cross-validation (``folds: 10``), one
Trainer run per fold (:func:`cnnlab.train.crossval.cross_validate`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from cnnlab.data.dataset import data_root
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.inference import eval_precision
from cnnlab.models.textcnn import PAD_ID, TextCNN
from cnnlab.text.datasets import TOKENIZERS, SentenceDataset, folds, load_dataset, tokenizer
from cnnlab.text.vocab import Vocab
from cnnlab.checkpoint import Checkpoint
from cnnlab.train.config import IMAGE_ONLY_KEYS, TrainConfig, options_from_dict
from cnnlab.train.distributed import DistContext
from cnnlab.train.task import Task, load_model, seed_from

if TYPE_CHECKING:  # cnnlab.text.vectors imports gensim: only when vectors are read
    from cnnlab.text.vectors import KeyedVectors

PAD_WORD = "<pad>"
BATCHINGS = ("shuffle", "kim")


@dataclass(frozen=True)
class TextOptions:
    """The options of Kim's protocol (``config.task``).

    Attributes:
        vectors: pre-trained vectors (word2vec text or binary format), needed by every
            variant but ``rand``; a relative path not found in the working directory is
            read from the data folder (``--data-dir``, ``$CNNLAB_DATA``), as the datasets are.
        tokenize: ``kim`` (Kim's re-tokenisation) or ``split`` (the files' own tokens).
        batching: ``shuffle`` (reshuffle every epoch) or ``kim`` (Kim's code: the
            training set topped up with random repeats to a multiple of the batch size,
            cut once into fixed batches, visited in a new order each epoch).
        max_norm: the L2 bound of each output weight vector (s = 3).
        dev_fraction: the share of the training part held out as dev where the dataset has no dev set.
    """

    vectors: str | None = None
    tokenize: str = "kim"
    batching: str = "shuffle"
    max_norm: float = 3.0
    dev_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.batching not in BATCHINGS:
            raise CnnlabError(f"unknown batching {self.batching!r}; choose one of {', '.join(BATCHINGS)}")
        if self.tokenize not in TOKENIZERS:
            raise CnnlabError(f"unknown tokenize {self.tokenize!r}; choose one of {', '.join(TOKENIZERS)}")
        if not 0 < self.dev_fraction < 1:
            raise CnnlabError(f"dev_fraction must lie in (0, 1), got {self.dev_fraction}")



def collate(sentences: list[torch.Tensor]) -> torch.Tensor:
    """A batch of sentences, padded at the end to the longest (the model adds Kim's margins)."""
    return pad_sequence(sentences, batch_first=True, padding_value=PAD_ID)


def kim_fixed_batches(train: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Kim's code's batches: the set topped up with random repeats to a multiple of
    ``batch_size`` and cut once, shape (batches, batch_size)."""
    extra = (-len(train)) % batch_size
    filled = torch.cat([train, train[torch.randperm(len(train), generator=generator)[:extra]]])
    return filled[torch.randperm(len(filled), generator=generator)].view(-1, batch_size)


def epoch_batches(train: torch.Tensor, batch_size: int, fixed: torch.Tensor | None,
                  generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's mini-batches of training indices: ``fixed`` batches in a new order
    (Kim's batching), or the training set reshuffled and cut (the last batch may be smaller)."""
    if fixed is not None:
        return list(fixed[torch.randperm(len(fixed), generator=generator)])
    return list(train[torch.randperm(len(train), generator=generator)].split(batch_size))


@torch.no_grad()
def accuracy(model: nn.Module, sentences: list[torch.Tensor], labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of sentences classified correctly (batched by similar length)."""
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        correct += int((model(collate([sentences[i] for i in index])).argmax(1) == labels[index]).sum())
    return correct / len(sentences)


class TextClassification(Task):
    """Sentences to classes with Kim's CNN (see the module docstring)."""

    name = "text"
    card_tasks = ("text",)
    unused_config = IMAGE_ONLY_KEYS
    default_best_metric = "dev_accuracy"
    train_columns = ("train_loss", "train_accuracy")
    eval_columns = ("dev_accuracy", "test_accuracy")
    eval_options = ("data_dir", "precision", "allow_nonfinite")
    sample_unit = "sent"
    defaults = {
        "batch_size": 50,
        "epochs": 25,
        "optimizer": {"name": "lazy_adadelta", "lr": 1.0, "rho": 0.95, "eps": 1e-6},
        "schedule": {"name": "constant"},
        "eval_batch_size": 500,
    }

    def __init__(self, config: Any, context: Any, device: torch.device) -> None:
        super().__init__(config, context, device)
        self.options = options_from_dict(TextOptions, config.task, "text task option ")
        dataset = load_dataset(config.dataset, data_root(config.data_dir), tokenize=self.options.tokenize)
        self.dataset = dataset
        self.classes = list(dataset.classes)
        self.vocab = Vocab.build(dataset.sentences, specials=(PAD_WORD,))
        self.sentences = [torch.from_numpy(self.vocab.encode(s)) for s in dataset.sentences]
        self.labels = torch.as_tensor(dataset.labels, dtype=torch.long)
        self.fold_index, self.fold = self._fold(dataset)
        self.train_ids = torch.as_tensor(self.fold.train)
        self.vectors = self._vectors()
        self.words_with_vectors = 0
        generator = torch.Generator().manual_seed(seed_from(config.seed, self.fold_index, "kim-batches"))
        self.fixed = (kim_fixed_batches(self.train_ids, config.batch_size, generator)
                      if self.options.batching == "kim" else None)
        self._epoch, self._batches = -1, []

    def _fold(self, dataset: SentenceDataset) -> tuple[int, Any]:
        cfg = self.config
        if dataset.split is not None and cfg.folds > 1:
            raise CnnlabError(f"{cfg.dataset} has a standard split: train it without --folds")
        if dataset.split is None and cfg.folds == 1:
            raise CnnlabError(f"{cfg.dataset} has no standard split: pass --folds 10 (Kim's 10-fold cross-validation)")
        if dataset.split is None and cfg.fold is None:
            raise CnnlabError("a cross-validation fold needs config.fold; run the folds with cross_validate")
        all_folds = folds(dataset, num_folds=max(cfg.folds, 2), dev_fraction=self.options.dev_fraction,
                          seed=cfg.seed)
        index = (cfg.fold or 1) - 1
        return index, all_folds[index]

    def _vectors(self) -> KeyedVectors | None:
        variant = self.config.model_kwargs.get("variant", "rand")
        if variant == "rand":
            return None
        if not self.options.vectors:
            raise CnnlabError(f"variant {variant!r} needs pre-trained vectors: give --vectors FILE")
        from cnnlab.text.vectors import KeyedVectors

        path = Path(self.options.vectors).expanduser()
        if not path.is_absolute() and not path.exists():  # a file of the data folder, as the datasets are
            path = data_root(self.config.data_dir) / path
        if not path.is_file():
            raise CnnlabError(f"vectors file {self.options.vectors} not found (in the working directory or in the "
                              f"data folder {data_root(self.config.data_dir)})")
        return KeyedVectors.load_word2vec_format(str(path), binary=None)

    def build_model(self) -> nn.Module:
        # Each fold its own initialisation, as the per-fold seed (seed + fold) of the earlier runs.
        torch.manual_seed(self.config.seed + self.fold_index)
        generator = torch.Generator().manual_seed(self.config.seed + self.fold_index)
        embeddings = None
        if self.vectors is not None:
            from cnnlab.text.vectors import embedding_matrix

            embeddings, self.words_with_vectors = embedding_matrix(self.vocab.words, self.vectors, generator=generator)
        kwargs = self.model_record()["kwargs"]
        return TextCNN(num_classes=len(self.classes), embeddings=embeddings, sparse_grad=True, **kwargs)

    def model_record(self) -> dict[str, Any]:
        kwargs = {"vocab_size": len(self.vocab), **self.config.model_kwargs}
        if self.vectors is not None:
            kwargs["embed_dim"] = self.vectors.vector_size
        return {"name": self.config.model, "num_classes": len(self.classes), "in_chans": 1, "kwargs": kwargs}

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.config.dataset, "options": asdict(self.options),
                "fold": self.fold_index + 1, "folds": self.config.folds, "vocab": self.vocab.words,
                "words_with_vectors": self.words_with_vectors}

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_ids) / self.config.batch_size)

    def batch(self, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, ctx = self.config, self.context
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(seed_from(cfg.seed, self.fold_index, "order", epoch))
            self._epoch, self._batches = epoch, epoch_batches(self.train_ids, cfg.batch_size, self.fixed, generator)
        index = self._batches[step].tensor_split(ctx.world_size)[ctx.rank].tolist()
        x = collate([self.sentences[i] for i in index])
        return x.to(self.device), self.labels[index].to(self.device)

    def loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        return loss, torch.stack([loss.detach(), logits.argmax(1).eq(y).sum().float(),
                                  torch.tensor(float(len(y)), device=y.device)])

    def train_row(self, totals: torch.Tensor, steps: int) -> dict[str, float]:
        return {"train_loss": totals[0].item() / steps, "train_accuracy": totals[1].item() / totals[2].item()}

    def progress_values(self, totals: torch.Tensor, steps: int) -> dict[str, str]:
        return {"acc": f"{100 * totals[1].item() / totals[2].item():.2f}%"}

    def after_step(self, model: nn.Module) -> None:
        model.constrain_output_norm(self.options.max_norm)

    def _split(self, ids: Any) -> tuple[list[torch.Tensor], torch.Tensor]:
        ids = list(map(int, ids))
        return [self.sentences[i] for i in ids], self.labels[ids]

    def evaluate(self, model: nn.Module, autocast: Callable) -> dict[str, float]:
        size = self.config.eval_batch_size
        with autocast():
            return {"dev_accuracy": accuracy(model, *self._split(self.fold.dev), size),
                    "test_accuracy": accuracy(model, *self._split(self.fold.test), size)}

    # ----- using a trained model -----

    @classmethod
    def rebuild_model(cls, meta: dict[str, Any]) -> nn.Module:
        spec = meta["model"]
        kwargs = dict(spec["kwargs"])
        if kwargs.get("variant", "rand") != "rand":
            # The pre-trained rows are in the checkpoint's tensors; zeros stand in until they load.
            kwargs["embeddings"] = torch.zeros(kwargs["vocab_size"], kwargs.get("embed_dim", 300))
        return TextCNN(num_classes=spec["num_classes"], **kwargs)

    @classmethod
    def evaluate_checkpoints(cls, checkpoints: list[Checkpoint], options: dict[str, Any]) -> str:
        if len(checkpoints) > 1:
            raise CnnlabError("ensembles are evaluated for image classifiers only")
        checkpoint = checkpoints[0]
        config = checkpoint.meta["config"]
        values = {**config, "data_dir": str(data_root(options.get("data_dir"), config["data_dir"]))}
        task = cls(TrainConfig.from_dict(values), DistContext(), torch.device("cpu"))
        if task.vocab.words != checkpoint.meta["task"]["vocab"]:
            raise CnnlabError(f"{checkpoint.path}: the dataset's vocabulary is not the one the model was trained on")
        model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
        # In the precision the Trainer evaluated in, so that eval repeats the run's numbers.
        precision = eval_precision("cpu", options.get("precision") or "auto", config.get("precision"))
        result = task.evaluate(model, (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16"
                               else contextlib.nullcontext)
        return (f"{checkpoint.path} on {task.config.dataset} (fold {task.fold_index + 1}): "
                f"test accuracy {100 * result['test_accuracy']:.2f}% ({len(task.fold.test)} sentences), "
                f"dev accuracy {100 * result['dev_accuracy']:.2f}%")

    @classmethod
    def predict(cls, checkpoint: Checkpoint, inputs: list[str], options: dict[str, Any]) -> list[str]:
        model = load_model(checkpoint, allow_nonfinite=options.get("allow_nonfinite", False))
        record = checkpoint.meta["task"]
        vocab = Vocab(record["vocab"], [0] * len(record["vocab"]))
        tokens = tokenizer(record["options"]["tokenize"], record["dataset"])
        lines = []
        for sentence in inputs:
            ids = vocab.encode(tokens(sentence))
            if len(ids) == 0:
                lines.append(f"{sentence!r}: no word of it is in the model's vocabulary")
                continue
            with torch.inference_mode():
                probs = model(torch.from_numpy(ids)[None]).softmax(1)[0]
            p, k = probs.max(0)
            lines.append(f"{sentence!r}: {checkpoint.meta['classes'][int(k)]} ({100 * float(p):.1f}%)")
        return lines
