"""The one engine: image classification, Kim's CNN and the U-Net train through the same
Trainer, resume bit-exactly after ``kill -9``, refuse to overwrite a run, and are evaluated
and used through the same ``cnnlab eval`` and ``cnnlab predict``; command-line values keep
their types; a bug shows its traceback."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.commands.cli import build_parser, main
from cnnlab.errors import CnnlabError
from cnnlab.train import Trainer, load_checkpoint, resolve_config
from cnnlab.commands.train import _flags


def text_data(root: Path, n: int = 240) -> Path:
    """A two-file sentence set laid out as MR's, whose cue word decides the label."""
    rng = np.random.default_rng(0)
    lines: dict[int, list[str]] = {0: [], 1: []}
    for i in range(n):
        label = i % 2
        cue = ["good", "great"] if label else ["bad", "awful"]
        filler = [f"w{j}" for j in rng.integers(0, 30, rng.integers(2, 9))]
        lines[label].append(" ".join(filler[:2] + [cue[i % 4 // 2]] + filler[2:]))
    (root / "mr").mkdir(parents=True, exist_ok=True)
    for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        (root / "mr" / name).write_text("\n".join(lines[label]) + "\n")
    return root


def isbi_data(root: Path) -> Path:
    """30 slices laid out as ISBI 2012: 16 px cells between 2 px darker membranes."""
    cells = np.ones((48, 48), dtype=bool)
    cells[::16] = cells[1::16] = False
    cells[:, ::16] = cells[:, 1::16] = False
    for folder, array in (("image", np.where(cells, 200, 40)), ("label", np.where(cells, 255, 0))):
        (root / "train" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(30):
            Image.fromarray(array.astype(np.uint8)).save(root / "train" / folder / f"{i}.png")
    return root


def task_config(task: str, data: Path):
    """A few seconds of deterministic training of each task, checkpointing every step."""
    common = {"deterministic": True, "checkpoint_every": 1, "data_dir": str(data)}
    if task == "classification":
        return resolve_config("resnet20", flags={**common, "dataset": "digits", "max_steps": 8, "batch_size": 32,
                                                 "data_dir": None, "task": {}})
    if task == "text":
        return resolve_config("textcnn", flags={**common, "dataset": "mr", "folds": 3, "fold": 1, "epochs": 2,
                                                "batch_size": 10, "model_kwargs.embed_dim": 8,
                                                "model_kwargs.maps": 4})
    return resolve_config("unet", flags={**common, "epochs": 1, "model_kwargs.width": 2, "task.tile": 4})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {"classification": root, "text": text_data(root / "text"), "segmentation": isbi_data(root / "isbi")}



CHILD = textwrap.dedent(
    """
    import sys, time, torch
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_engine import task_config
    from cnnlab.train import Trainer

    torch.set_num_threads({threads})

    def pause_after(step, path):
        if step == {kill_at}:
            print("CHECKPOINTED", step, flush=True)
            time.sleep(600)  # the test sends SIGKILL here

    Trainer(task_config({task!r}, Path({data!r})), {run!r}, on_checkpoint=pause_after).fit()
    """
)


def _kill_at(task: str, data: Path, run: Path, step: int) -> None:
    script = CHILD.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads(), kill_at=step,
                          task=task, data=str(data), run=str(run))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        line = child.stdout.readline()
        assert line.split() == ["CHECKPOINTED", str(step)], f"child said {line!r}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("task", ["classification", "text", "segmentation"])
def test_a_killed_run_of_every_task_resumes_bit_exactly(task, data, tmp_path) -> None:
    config = task_config(task, data[task])
    straight = Trainer(config, tmp_path / "straight").fit()
    _kill_at(task, data[task], tmp_path / "killed", 5)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.json").step == 5
    resumed = Trainer(config, tmp_path / "killed", resume=True).fit()
    assert resumed.step == straight.step > 5
    expected = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.json")
    got = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.json")
    assert expected.tensors.keys() == got.tensors.keys()
    for key, value in expected.tensors.items():
        assert torch.equal(value, got.tensors[key]), key
    assert got.meta["optimizer"]["param_groups"] == expected.meta["optimizer"]["param_groups"]
    steps = [(run / "metrics.csv").read_text().splitlines()[1:] for run in (tmp_path / "straight", tmp_path / "killed")]
    assert [r.split(",")[1] for r in steps[1]] == [r.split(",")[1] for r in steps[0]], "no row lost or duplicated"


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    argv = {
        "classification": ["train", "resnet20", "--dataset", "digits", "--max-steps", "2", "--batch-size", "16"],
        "text": ["train", "textcnn", "--dataset", "mr", "--data-dir", str(data["text"]), "--folds", "3",
                 "--max-folds", "1", "--epochs", "1", "--set", "model_kwargs.maps=2", "--set",
                 "model_kwargs.embed_dim=8"],
        "segmentation": ["train", "unet", "--data-dir", str(data["segmentation"]), "--epochs", "1",
                         "--width", "2", "--tile", "4"],
    }
    for task, args in argv.items():
        assert main([*args, "--out", str(root / task)]) == 0
    return {task: root / task for task in argv}


@pytest.mark.parametrize("task", ["classification", "text", "segmentation"])
def test_a_second_train_into_the_same_out_is_refused(task, runs, data, capsys) -> None:
    before = sorted(p.name for p in runs[task].rglob("*"))
    config = task_config(task, data[task])
    with pytest.raises(CnnlabError, match="already holds a run: pass --resume"):
        Trainer(config, runs[task] / ("fold-1" if task == "text" else "")).fit()
    assert sorted(p.name for p in runs[task].rglob("*")) == before


def test_the_training_error_in_eval_mode_is_scored_on_the_same_training_images_in_every_run(tmp_path) -> None:
    flags = {"dataset": "digits", "max_steps": 2, "batch_size": 32, "precision": "fp32", "deterministic": True,
             "task": {"train_eval_images": 100}}
    first, second = (Trainer(resolve_config("resnet20", flags={**flags, "seed": seed}), tmp_path / f"seed{seed}")
                     for seed in (0, 1))
    index = first.task.train_eval_index
    assert len(index.unique()) == 100 and torch.equal(index, second.task.train_eval_index)
    metrics = first.fit().metrics
    # The same number by hand: the trained model in eval mode on those images, without augmentation.
    model, task = first.model.eval(), first.task
    x, y = task._slice(task.train_set, index, task.eval_transform, 0)
    with torch.no_grad():
        logits = model(x)
    assert metrics["train_eval_top1_err"] == pytest.approx(1 - logits.argmax(1).eq(y).float().mean().item())
    assert metrics["train_eval_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert "train_eval_top1_err" in (tmp_path / "seed0" / "metrics.csv").read_text().splitlines()[0]


def test_eval_and_predict_a_classifier(runs, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(runs["classification"])]) == 0
    assert "on digits test (355 images, center): top-1 error" in capsys.readouterr().out
    assert main(["eval", str(runs["classification"]), "--precision", "fp32"]) == 0
    assert "top-1 error" in capsys.readouterr().out
    digit = (np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)
    Image.fromarray(digit).save(tmp_path / "digit.png")
    assert main(["predict", str(runs["classification"]), str(tmp_path / "digit.png")]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{tmp_path / 'digit.png'}: ") and line.count("%") == 5


def test_eval_and_predict_a_textcnn(runs, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(runs["text"])]) == 0
    assert "on mr (fold 1): test accuracy" in capsys.readouterr().out
    assert main(["predict", str(runs["text"] / "fold-1"), "a great film", "w1 bad w2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("'a great film': positive (") or lines[0].startswith("'a great film': negative (")
    assert len(lines) == 2


def test_eval_and_predict_a_unet(runs, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(runs["segmentation"]), "--tile", "20"]) == 0
    out = capsys.readouterr().out
    assert "all 30 training slices (nothing was held out)" in out and "warping error" in out
    image = (np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(image).save(tmp_path / name / "slice.png")
    inputs = [str(tmp_path / "a" / "slice.png"), str(tmp_path / "b" / "slice.png")]
    assert main(["predict", str(runs["segmentation"]), *inputs, "--out", str(tmp_path / "out"), "--tile", "20"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["slice-2_overlay.png", "slice-2_prob.png", "slice_overlay.png", "slice_prob.png"]


def test_options_a_task_does_not_read_are_refused_in_one_line(runs, tmp_path, capsys) -> None:
    # Before any data is read: the data folder does not exist.
    nowhere = ["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]
    cases = [
        (["train", "textcnn", "--dataset", "mr", "--set", "augment=[{name: random_crop_flip}]", *nowhere],
         "textcnn (text task) does not use augment"),
        (["train", "unet", "--set", "normalize=auto", "--set", "label_smoothing=0.1", *nowhere],
         "unet (segmentation task) does not use normalize, label_smoothing"),
        (["train", "resnet20", "--tile", "20", *nowhere],
         "unknown classification task option(s) tile; valid: train_eval_images"),
        (["train", "resnet20", "--set", "task.train_eval_images=-1", *nowhere],
         "task option train_eval_images must be 0 or more, got -1"),
        (["train", "unet", "--set", "task.tile=big", *nowhere], "segmentation task option tile must be int"),
        (["train", "textcnn", "--set", "task.vector=x", *nowhere], "unknown text task option(s) vector; valid: "),
        (["eval", str(runs["classification"]), "--tile", "20", "--precision", "bf16"],
         "--tile: not an option of `cnnlab eval` for a classification model"),
        (["eval", str(runs["text"]), "--device", "cpu", "--batch-size", "8", "--protocol", "10crop"],
         "--protocol, --batch-size, --device: not an option of `cnnlab eval` for a text model"),
        (["predict", str(runs["classification"]), "x.png", "--format", "npy"],
         "--format: not an option of `cnnlab predict` for a classification model"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_the_removed_alias_commands_say_what_to_type(capsys) -> None:
    for argv, instead in ((["seg", "train", "unet", "--epochs", "1"], "cnnlab train unet"),
                          (["--debug", "seg", "predict", "run", "x.png"], "cnnlab predict"),
                          (["text", "train", "textcnn"], "cnnlab train textcnn")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"use `{instead} ...`" in err and err.count("\n") == 1


def test_command_line_values_arrive_with_their_types() -> None:
    args = build_parser().parse_args(["train", "resnet20", "--weight-decay", "5e-5", "--lr", "1e-3",
                                      "--data-dir", "2024", "--set", "optimizer.momentum=9e-1"])
    config = resolve_config(args.model, args.recipe, args.set, _flags(args))
    assert config.optimizer["weight_decay"] == 5e-5 and isinstance(config.optimizer["weight_decay"], float)
    assert config.optimizer["lr"] == 1e-3 and config.optimizer["momentum"] == 0.9
    assert config.data_dir == str(Path("2024").resolve()), "a folder name, not a number (recorded absolute)"
    with pytest.raises(CnnlabError, match="config key epochs must be int, got 'three'"):
        resolve_config("resnet20", overrides=["epochs=three"])
    with pytest.raises(CnnlabError, match="optimizer.lr must be a number, got 'fast'"):
        resolve_config("resnet20", overrides=["optimizer.lr=fast"])


def test_a_bug_shows_its_traceback_and_debug_shows_user_errors(monkeypatch, capsys) -> None:
    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("cnnlab.train.config.resolve_config", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["train", "resnet20"])
    monkeypatch.undo()
    with pytest.raises(CnnlabError, match="unknown model"):
        main(["--debug", "train", "resnet2"])
    monkeypatch.setenv("CNNLAB_DEBUG", "1")
    with pytest.raises(CnnlabError, match="unknown model"):
        main(["train", "resnet2"])


def test_converted_zoo_weights_predict_with_imagenet_names(fill, reference_dir, tmp_path, capsys) -> None:
    from cnnlab.weights import convert_file, imagenet_class_names

    state_dict, _, _ = fill.load_fixture(reference_dir / "torchvision__resnet18.json")
    weights = tmp_path / "r18-tv"
    convert_file(state_dict, "torchvision", "resnet18", weights)
    image = (np.random.default_rng(0).random((300, 280, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "photo.png")
    capsys.readouterr()
    assert main(["predict", str(weights), str(tmp_path / "photo.png")]) == 0
    line = capsys.readouterr().out
    assert line.count("%") == 5 and sum(name in line for name in imagenet_class_names()) >= 5
    assert main(["eval", str(weights)]) == 2
    assert "give --dataset" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_export_matches_eager(fmt, runs, tmp_path, capfd, caplog) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra: pip install 'cnnlab[export]'")
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(runs["classification"]), "--format", fmt, "--out", str(out)]) == 0
    written = capfd.readouterr()
    assert out.is_file() and "largest difference from eager" in written.out
    notices = [r for r in caplog.records if "torchvision is not installed" in r.getMessage()]
    assert not notices and "torchvision" not in written.err, "cnnlab's models use no torchvision operator"
    assert main(["export", str(runs["classification"]), "--format", fmt, "--out", str(out)]) == 2
    assert "exists" in capfd.readouterr().err


def test_a_cross_validation_resumes_at_the_fold_where_it_stopped(data, tmp_path) -> None:
    from cnnlab.train import cross_validate

    config = resolve_config("textcnn", flags={"dataset": "mr", "data_dir": str(data["text"]), "folds": 3,
                                              "epochs": 1, "model_kwargs.maps": 2, "model_kwargs.embed_dim": 8})
    run = tmp_path / "cv"
    cross_validate(config, run, max_folds=1, stream=io.StringIO())  # "killed" after fold 1
    first = (run / "fold-1" / "checkpoints" / "last.json").read_bytes()
    summary = cross_validate(config, run, resume=True, stream=io.StringIO())
    assert [f["fold"] for f in summary["folds"]] == [1, 2, 3]
    assert (run / "fold-1" / "checkpoints" / "last.json").read_bytes() == first, "fold 1 was not trained again"


def test_eval_refuses_tensors_that_do_not_fit_the_record(runs, tmp_path, capsys) -> None:
    import json

    record = json.loads((runs["classification"] / "checkpoints" / "last.json").read_text())
    record["model"]["num_classes"] = 3
    bad = runs["classification"] / "checkpoints" / "mismatch.json"
    bad.write_text(json.dumps(record))
    try:
        assert main(["eval", str(bad)]) == 2
        assert "do not fit the model its record describes" in capsys.readouterr().err
    finally:
        bad.unlink()


def test_every_command_prints_fractions_in_percent_and_rates_as_numbers() -> None:
    from cnnlab.train.monitor import format_metric

    assert format_metric("test_accuracy", 0.808) == "80.80%"
    assert format_metric("val_pixel_err", 0.0611) == "6.11%"
    assert format_metric("test_top5_err", 0.00282) == "0.28%"
    assert format_metric("val_warping_err", 0.000353) == "0.0353%", "small errors keep three digits"
    assert format_metric("test_loss", 0.41234) == "0.4123"
    assert format_metric("sent_per_s", 1393.95) == "1,394"


def quick_classifier(**flags):
    """A few deterministic steps of the four-layer CIFAR net on the digits (44 steps an epoch of 32)."""
    return resolve_config("alexnet_cifar", flags={"dataset": "digits", "batch_size": 32, "precision": "fp32",
                                                  "deterministic": True, "preprocess": [{"name": "resize", "size": 32}],
                                                  "compile": False, "channels_last": False, **flags})


def _rows(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_eval_every_steps_evaluates_within_epochs_and_at_their_ends(tmp_path) -> None:
    config = quick_classifier(max_steps=50, eval_every_steps=20)
    steps_per_epoch = Trainer(config, tmp_path / "probe").steps_per_epoch
    Trainer(config, tmp_path / "run").fit()
    rows = _rows(tmp_path / "run")
    evaluated = [int(r["step"]) for r in rows if r["test_top1_err"]]
    assert evaluated == sorted({20, 40, steps_per_epoch, 50}), "every 20 steps, at the epoch's end and the run's"
    assert [float(r["epoch"]) for r in rows] == [round(s / steps_per_epoch, 4) for s in evaluated]


def test_a_run_killed_between_evaluations_within_an_epoch_resumes_bit_exactly(tmp_path) -> None:
    config = quick_classifier(max_steps=12, eval_every_steps=4, checkpoint_every=1)
    straight = Trainer(config, tmp_path / "straight").fit()

    def kill(step: int, path: Path) -> None:
        if step == 6:  # between the evaluations at steps 4 and 8
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed", on_checkpoint=kill).fit()
    resumed = Trainer(config, tmp_path / "killed", resume=True).fit()
    assert resumed.step == straight.step == 12
    expected = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.json")
    got = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.json")
    for key, value in expected.tensors.items():
        assert torch.equal(value, got.tensors[key]), key
    assert [r["step"] for r in _rows(tmp_path / "killed")] == [r["step"] for r in _rows(tmp_path / "straight")]
    assert [r["test_top1_err"] for r in _rows(tmp_path / "killed")] == [
        r["test_top1_err"] for r in _rows(tmp_path / "straight")]


def test_stop_at_ends_the_run_at_the_first_evaluation_that_reaches_the_target(tmp_path) -> None:
    whole = quick_classifier(max_steps=30, eval_every_steps=5)
    Trainer(whole, tmp_path / "whole").fit()
    errors = [(int(r["step"]), float(r["test_top1_err"])) for r in _rows(tmp_path / "whole")]
    target = min(e for _, e in errors[1:])  # reached at some evaluation after the first
    first = next(step for step, e in errors if e <= target)
    stopped = quick_classifier(max_steps=30, eval_every_steps=5, stop_at={"metric": "test_top1_err", "value": target})
    result = Trainer(stopped, tmp_path / "stopped").fit()
    assert result.step == first and result.metrics["test_top1_err"] <= target
    assert [int(r["step"]) for r in _rows(tmp_path / "stopped")][-1] == first
    # A resumed run that had reached its target stays where it stopped.
    assert Trainer(stopped, tmp_path / "stopped", resume=True).fit().step == first


def test_stop_at_and_eval_every_steps_are_checked_and_recorded_only_when_set(tmp_path) -> None:
    for bad in ({"metric": "test_top1_err"}, {"metric": "test_top1_err", "value": "low"}, {"value": 0.25}):
        with pytest.raises(CnnlabError, match="stop_at must be a metric and a number"):
            quick_classifier(stop_at=bad)
    with pytest.raises(CnnlabError, match="eval_every_steps must be a positive integer"):
        quick_classifier(eval_every_steps=0)
    with pytest.raises(CnnlabError, match="stop_at.metric 'dev_accuracy' is not one of this task's metrics"):
        Trainer(quick_classifier(stop_at={"metric": "dev_accuracy", "value": 0.9}), tmp_path / "run")
    # Unset, they stay out of the record: the configs (and run names) of earlier runs are unchanged.
    assert not {"stop_at", "eval_every_steps"} & set(quick_classifier().to_dict())
    assert quick_classifier(eval_every_steps=5).to_dict()["eval_every_steps"] == 5
