"""Kim's CNN: the four variants, padding, dropout, the max-norm constraint, pre-trained initialisation, training."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch

from cnnlab import create_model
from cnnlab.errors import CnnlabError
from cnnlab.layers import ClassicDropout
from cnnlab.models.textcnn import TextCNN
from cnnlab.text.task import TextOptions, collate, epoch_batches, kim_fixed_batches
from cnnlab.text.vectors import KeyedVectors, embedding_matrix
from cnnlab.train import cross_validate, resolve_config
from cnnlab.checkpoint import load_checkpoint
from cnnlab.train.optim import LazyAdadelta

VOCAB = 40


def small(variant: str = "rand", **kw) -> TextCNN:
    torch.manual_seed(0)
    embeddings = torch.randn(VOCAB, 8) if variant != "rand" else None
    return TextCNN(vocab_size=VOCAB, num_classes=3, variant=variant, embed_dim=8, embeddings=embeddings, maps=4, **kw)


@pytest.mark.parametrize("variant", ["rand", "static", "non-static", "multichannel"])
def test_variants_train_the_right_embeddings(variant):
    model = small(variant)
    x = torch.randint(1, VOCAB, (5, 9))
    out = model(x)
    assert out.shape == (5, 3) and model.num_features == 12
    out.sum().backward()
    trainable_embed = model.embed.weight.requires_grad
    assert trainable_embed == (variant != "static")
    if variant == "multichannel":
        assert not model.static_embed.weight.requires_grad
        assert model.features.convs[0].in_channels == 16
    else:
        assert model.static_embed is None


def test_pretrained_variants_need_vectors_and_matching_shape():
    with pytest.raises(ValueError, match="needs pre-trained vectors"):
        TextCNN(vocab_size=VOCAB, num_classes=2, variant="static")
    with pytest.raises(ValueError, match="shape"):
        TextCNN(vocab_size=VOCAB, num_classes=2, variant="static", embeddings=torch.randn(VOCAB + 1, 8))
    with pytest.raises(ValueError, match="unknown textcnn variant"):
        TextCNN(vocab_size=VOCAB, num_classes=2, variant="dynamic")


def test_short_sentences_are_padded_to_the_widest_filter():
    model = small().eval()
    for length in (1, 2, 4):
        x = torch.randint(1, VOCAB, (2, length))
        padded = torch.cat([x, torch.zeros(2, 5 - length, dtype=torch.long)], dim=1)
        torch.testing.assert_close(model(x), model(padded))


def test_a_prediction_does_not_depend_on_the_batch():
    model = small().eval()
    with torch.no_grad():  # every word lowers every map, so a window of padding alone holds the max
        model.embed.weight.abs_()
        for conv in model.features.convs:
            conv.weight.uniform_(-1.0, 0.0)
            conv.bias.uniform_(0.5, 1.0)
        model.head.fc.weight.normal_()
    short, long = torch.randint(1, VOCAB, (3,)), torch.randint(1, VOCAB, (12,))
    alone = model(collate([short]))
    beside_a_longer_one = model(collate([short, long]))[:1]
    torch.testing.assert_close(alone, beside_a_longer_one)


def test_dropout_is_the_papers():
    x = torch.rand(200, 300) + 1
    drop = ClassicDropout(0.5)
    y = drop(x)
    kept = y != 0
    assert 0.4 < kept.float().mean() < 0.6
    torch.testing.assert_close(y[kept], x[kept])  # no 1 / (1 - p) while training
    torch.testing.assert_close(drop.eval()(x), 0.5 * x)  # the keep probability at test time
    assert isinstance(small().head.drop, ClassicDropout)


def test_input_errors_are_one_line():
    model = small()
    with pytest.raises(ValueError, match="2-D batch"):
        model(torch.randint(1, VOCAB, (7,)))
    with pytest.raises(ValueError, match="int64 token ids"):
        model(torch.rand(2, 7))
    with pytest.raises(ValueError, match=r"lie in \[0, 40\)"):
        model(torch.full((1, 6), VOCAB))
    with pytest.raises(TypeError):
        model([[1, 2, 3]])


def test_padding_vector_stays_zero_while_training():
    model = small("non-static")
    optimizer = torch.optim.Adadelta([p for p in model.parameters() if p.requires_grad])
    x = torch.tensor([[0, 3, 4, 0, 0, 0], [5, 6, 7, 8, 0, 0]])
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert torch.all(model.embed.weight[0] == 0)


@pytest.mark.parametrize("variant", ["rand", "multichannel"])
def test_lazy_adadelta_on_sparse_gradients_equals_dense_adadelta(variant):
    dense, lazy = small(variant), small(variant, sparse_grad=True)
    optimizers = [torch.optim.Adadelta([p for p in dense.parameters() if p.requires_grad], rho=0.95, eps=1e-6),
                  LazyAdadelta([p for p in lazy.parameters() if p.requires_grad], rho=0.95, eps=1e-6)]
    generator = torch.Generator().manual_seed(1)
    for step in range(12):
        # Every third batch draws from a few words only, so most rows sit out several steps.
        x = torch.randint(1, VOCAB if step % 3 else 6, (4, 7), generator=generator)
        y = torch.randint(0, 3, (4,), generator=generator)
        for model, optimizer in zip((dense, lazy), optimizers):
            model.eval()  # no dropout: both models must see the same function
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    assert lazy.embed.weight.grad.is_sparse
    for (name, a), b in zip(dense.state_dict().items(), lazy.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_lazy_adadelta_checks_its_arguments():
    with pytest.raises(ValueError, match="0 <= rho < 1"):
        LazyAdadelta([torch.nn.Parameter(torch.zeros(2))], rho=1.0)


def test_initialisation_is_kims():
    model = small()
    for conv in model.features.convs:
        assert conv.weight.abs().max() <= 0.01 and conv.weight.std() > 0.004 and not conv.bias.any()
    assert not model.head.fc.weight.any() and not model.head.fc.bias.any()
    assert model.embed.weight[1:].abs().max() <= 0.25


def test_max_norm_rescales_only_long_weight_rows():
    model = small()
    with torch.no_grad():
        model.head.fc.weight.copy_(torch.tensor([[10.0] * 12, [0.1] * 12, [0.0] * 12]))
    before = model.head.fc.weight.clone()
    model.constrain_output_norm(3.0)
    norms = model.head.fc.weight.detach().norm(dim=1)
    assert float(norms[0]) == pytest.approx(3.0, rel=1e-4)
    torch.testing.assert_close(model.head.fc.weight[1:], before[1:])


def test_registered_card_and_classifier_interface():
    model = create_model("textcnn", num_classes=6, vocab_size=100)
    assert model.card.task == "text" and model.card.min_input_size == 1
    x = model.example_input(model.card.input_size, batch_size=3)
    assert x.dtype == torch.long and x.shape == (3, 20)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (3, 300)
    model.reset_classifier(4)
    assert model(x).shape == (3, 4)
    with pytest.raises(ValueError, match="one channel of token ids"):
        create_model("textcnn", in_chans=3)


def test_missing_words_get_uniform_vectors_with_the_pretrained_variance():
    generator = torch.Generator().manual_seed(0)
    pretrained = KeyedVectors(["a", "b", "c"], torch.randn(3, 2000, generator=generator) * 0.4)
    words = ["<pad>", "a", "zz", "c", "yy"]
    matrix, found = embedding_matrix(words, pretrained, generator=generator)
    assert found == 2
    assert torch.all(matrix[0] == 0)
    torch.testing.assert_close(matrix[1], torch.tensor(pretrained["a"]))
    missing = matrix[[2, 4]]
    a = float(3 * pretrained.vectors.var()) ** 0.5
    assert missing.abs().max() <= a
    assert float(missing.var()) == pytest.approx(float(pretrained.vectors.var()), rel=0.1)


def test_a_cased_word_takes_its_lower_cased_vector():
    # GloVe 6B is lower-cased and TREC keeps case: "What" must get the vector of "what".
    pretrained = KeyedVectors(["what", "city", "Paris"], torch.arange(6.0).view(3, 2))
    matrix, found = embedding_matrix(["<pad>", "What", "what", "Paris", "PARIS", "Xyz"], pretrained,
                                     generator=torch.Generator().manual_seed(0))
    assert found == 3  # What (as what), what, Paris; PARIS finds no "paris" and is drawn at random
    torch.testing.assert_close(matrix[1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(matrix[2], matrix[1])
    torch.testing.assert_close(matrix[3], torch.tensor([4.0, 5.0]))
    assert not torch.equal(matrix[4], matrix[3])


def _toy_data_dir(root, n: int = 240):
    """A two-file sentence set laid out as MR's: the cue word decides the label."""
    rng = np.random.default_rng(0)
    lines = {0: [], 1: []}
    for i in range(n):
        label = i % 2
        cue = ["good", "great"] if label else ["bad", "awful"]
        filler = [f"w{j}" for j in rng.integers(0, 30, rng.integers(2, 9))]
        lines[label].append(" ".join(filler[:2] + [cue[i % 4 // 2]] + filler[2:]))
    (root / "mr").mkdir(parents=True)
    for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        (root / "mr" / name).write_text("\n".join(lines[label]) + "\n")
    return root


def _config(data_dir, **flags):
    return resolve_config("textcnn", flags={"dataset": "mr", "data_dir": str(data_dir), "folds": 3, **flags})


@pytest.mark.parametrize("batching", ["shuffle", "kim"])
def test_cross_validation_run_learns_and_writes_a_run_directory(tmp_path, batching):
    config = _config(_toy_data_dir(tmp_path / "data"), epochs=8, batch_size=10, **{
        "model_kwargs.embed_dim": 16, "model_kwargs.maps": 8, "task.batching": batching})
    run = tmp_path / "run"
    summary = cross_validate(config, run, max_folds=2, stream=io.StringIO())
    assert summary["protocol"] == "folds 1-2 of 3 (CV)"
    assert len(summary["folds"]) == 2
    assert summary["mean"]["test_accuracy"] > 0.75  # the cue word decides the label; chance is 0.5
    assert (run / "results.json").is_file() and (run / "fold-2" / "metrics.csv").is_file()
    checkpoint = load_checkpoint(run / "fold-1" / "checkpoints" / "best.json")
    fold = summary["folds"][0]
    assert checkpoint.meta["metrics"]["test_accuracy"] == fold["test_accuracy"]
    assert fold["history"][round(fold["best_epoch"]) - 1]["test_accuracy"] == fold["test_accuracy"]
    assert len(fold["history"]) == 8 and {"dev_accuracy", "test_accuracy"} <= set(fold["history"][0])
    assert "features.convs.0.weight" in checkpoint.model_state()


def test_a_cross_validation_can_be_split_over_runs(tmp_path):
    config = _config(_toy_data_dir(tmp_path / "data", 60), epochs=1, **{
        "model_kwargs.embed_dim": 8, "model_kwargs.maps": 2})
    summary = cross_validate(config, tmp_path / "run", first_fold=3, stream=io.StringIO())
    assert summary["protocol"] == "fold 3 of 3 (CV)" and summary["folds"][0]["fold"] == 3
    with pytest.raises(ValueError, match=r"first fold must lie in 1..3"):
        cross_validate(config, tmp_path / "run", first_fold=4)


def test_static_run_takes_the_dimension_of_the_vectors(tmp_path):
    vectors = tmp_path / "vectors.txt"
    KeyedVectors(["good", "bad", "w1"], torch.randn(3, 12)).save_word2vec_format(vectors)
    config = _config(_toy_data_dir(tmp_path / "data", 120), folds=2, epochs=1, **{
        "model_kwargs.variant": "static", "task.vectors": str(vectors), "model_kwargs.maps": 4})
    cross_validate(config, tmp_path / "run", max_folds=1, stream=io.StringIO())
    meta = load_checkpoint(tmp_path / "run" / "fold-1").meta
    assert meta["model"]["kwargs"]["embed_dim"] == 12
    assert meta["task"]["words_with_vectors"] == 3


def test_a_relative_vectors_path_is_read_from_the_data_folder(tmp_path, monkeypatch):
    data = _toy_data_dir(tmp_path / "data", 120)
    (data / "vectors").mkdir()
    KeyedVectors(["good", "bad"], torch.randn(2, 6)).save_word2vec_format(data / "vectors" / "v.txt")
    monkeypatch.chdir(tmp_path)  # the working directory holds no vectors/v.txt
    config = _config(data, folds=2, epochs=1, **{
        "model_kwargs.variant": "static", "task.vectors": "vectors/v.txt", "model_kwargs.maps": 4})
    cross_validate(config, tmp_path / "run", max_folds=1, stream=io.StringIO())
    assert load_checkpoint(tmp_path / "run" / "fold-1").meta["model"]["kwargs"]["embed_dim"] == 6
    missing = _config(data, folds=2, epochs=1, **{"model_kwargs.variant": "static", "task.vectors": "none.txt"})
    with pytest.raises(CnnlabError, match="vectors file none.txt not found"):
        cross_validate(missing, tmp_path / "run2", max_folds=1, stream=io.StringIO())


def test_shuffled_batches_partition_the_training_set_every_epoch():
    train = torch.arange(10, 33)
    first, second = (epoch_batches(train, 5, None, torch.Generator().manual_seed(s)) for s in (0, 1))
    assert [len(b) for b in first] == [5, 5, 5, 5, 3]
    for epoch in (first, second):
        assert sorted(torch.cat(epoch).tolist()) == list(range(10, 33))
    assert torch.cat(first).tolist() != torch.cat(second).tolist()


def test_kims_batches_are_full_fixed_and_reordered():
    fixed = kim_fixed_batches(torch.arange(10, 33), 5, torch.Generator().manual_seed(0))
    first, second = (epoch_batches(torch.arange(10, 33), 5, fixed, torch.Generator().manual_seed(s)) for s in (0, 1))
    assert [len(b) for b in first] == [5] * 5  # 23 examples topped up with 2 repeats
    assert set(torch.cat(first).tolist()) == set(range(10, 33))
    as_sets = lambda epoch: sorted(sorted(b.tolist()) for b in epoch)  # noqa: E731
    assert as_sets(first) == as_sets(second)  # the same batches ...
    assert [b.tolist() for b in first] != [b.tolist() for b in second]  # ... in another order


def test_unknown_batching_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown batching 'sorted'; choose one of shuffle, kim"):
        TextOptions(batching="sorted")


def test_a_run_finds_its_data_from_another_folder(tmp_path, monkeypatch, capsys):
    from cnnlab.commands.cli import main

    _toy_data_dir(tmp_path / "data", 60)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "textcnn", "--dataset", "mr", "--data-dir", "data", "--folds", "2", "--max-folds", "1",
                 "--epochs", "1", "--set", "model_kwargs.maps=2", "--out", "run"]) == 0
    summary = capsys.readouterr().out
    assert "mean over folds: " in summary and "test_accuracy " in summary
    assert re.search(r"sent_per_s [\d,]+(,|$)", summary), "a rate, not a percentage"
    monkeypatch.chdir(tmp_path / "elsewhere")  # the recorded folder is absolute, not "data"
    assert main(["eval", "../run"]) == 0
    first = capsys.readouterr().out
    assert "test accuracy" in first
    (tmp_path / "data").rename(tmp_path / "moved")  # $CNNLAB_DATA wins over the recorded folder
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "moved"))
    assert main(["eval", "../run"]) == 0
    assert capsys.readouterr().out == first


def test_the_trainers_final_numbers_are_the_ones_eval_repeats(tmp_path, capsys):
    from cnnlab.commands.cli import main

    rng = np.random.default_rng(1)
    classes = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    (tmp_path / "data" / "trec").mkdir(parents=True)
    for split, n in (("train", 300), ("test", 60)):
        lines = [f"{classes[i % 6]}:x w{rng.integers(0, 40)} cue{i % 6} w{rng.integers(0, 40)} ?" for i in range(n)]
        (tmp_path / "data" / "trec" / f"TREC.{split}").write_text("\n".join(lines) + "\n")
    assert main(["train", "textcnn", "--dataset", "trec", "--data-dir", str(tmp_path / "data"), "--epochs", "2",
                 "--set", "model_kwargs.maps=4", "--out", str(tmp_path / "run")]) == 0
    trained = capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run")]) == 0
    evaluated = capsys.readouterr().out
    for metric in ("dev accuracy", "test accuracy"):
        number = re.compile(f"{metric} ([0-9.]+%)")
        assert number.search(trained)[1] == number.search(evaluated)[1], (trained, evaluated)


def test_predict_takes_a_cross_validation_run_with_its_best_fold(tmp_path, capsys):
    from cnnlab.commands.cli import main

    config = _config(_toy_data_dir(tmp_path / "data", 60), folds=2, epochs=2, **{"model_kwargs.maps": 2})
    cross_validate(config, tmp_path / "run", stream=io.StringIO())
    dev = {fold: load_checkpoint(tmp_path / "run" / f"fold-{fold}").meta["best"]["value"] for fold in (1, 2)}
    best = max(dev, key=dev.get)
    assert main(["predict", str(tmp_path / "run"), "a good w1"]) == 0
    out, err = capsys.readouterr()
    assert f"predicting with {tmp_path / 'run' / f'fold-{best}'}" in err and "the best of 2 folds by dev_accuracy" in err
    assert out.startswith("'a good w1': ")
