"""What users of timm, torchvision and MONAI expect of the command line and the trainer:
fine-tuning, defaults that train on your own images, progress, habits of the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import list_models
from cnnlab.commands import main
from cnnlab.errors import CnnlabError
from cnnlab.train import Trainer, load_checkpoint, resolve_config


def shapes_folder(root: Path, per_class: int = 48, test_per_class: int = 16,
                  classes: tuple[str, ...] = ("disc", "square")) -> Path:
    """Your own images: 32x32 RGB squares vs discs at random places and colours, in
    ``root/{train,test}/<class>/``."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, count in (("train", per_class), ("test", test_per_class)):
        for shape in classes:
            (root / split / shape).mkdir(parents=True)
            for i in range(count):
                cy, cx, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(5, 9)
                inside = {"disc": (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r,
                          "square": (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8),
                          "plain": np.zeros((32, 32), dtype=bool)}[shape]
                image = rng.integers(0, 60, (32, 32, 3))
                image[inside] = rng.integers(150, 256, 3)
                Image.fromarray(image.astype(np.uint8)).save(root / split / shape / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shapes_folder(tmp_path_factory.mktemp("shapes"))


def test_the_defaults_train_on_your_own_images(shapes: Path, tmp_path: Path, capsys) -> None:
    # No recipe: the training set's channel statistics, warm-up and cosine decay, a rate that trains.
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes}", "--batch-size", "16", "--epochs", "8",
                 "--out", str(tmp_path / "run")]) == 0
    last = load_checkpoint(tmp_path / "run")
    assert last.meta["config"]["normalize"] == "auto" and len(last.meta["task"]["normalize"]["mean"]) == 3
    assert last.meta["metrics"]["test_top1_err"] < 0.25, "well above chance (0.5)"
    out = capsys.readouterr().out
    assert "top-5" not in out, "two classes: top-5 says nothing"


def test_fine_tuning_replaces_the_classifier_and_can_freeze_the_trunk(shapes: Path, tmp_path: Path) -> None:
    three = shapes_folder(tmp_path / "three", 8, 4, ("disc", "square", "plain"))
    source = resolve_config("resnet20", flags={"dataset": f"folder:{three}", "max_steps": 2, "batch_size": 8})
    Trainer(source, tmp_path / "source").fit()
    config = resolve_config("resnet20", flags={"dataset": f"folder:{shapes}", "max_steps": 3, "batch_size": 16,
                                               "init_from": str(tmp_path / "source"), "freeze": "features"})
    trainer = Trainer(config, tmp_path / "tuned")
    trained = load_checkpoint(tmp_path / "source").model_state()
    state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert state["head.fc.weight"].shape[0] == 2 and trained["head.fc.weight"].shape[0] == 3
    trunk = [k for k in trained if not k.startswith("head.") and trained[k].is_floating_point()]
    assert all((state[k].float() == trained[k].float()).all() for k in trunk)
    assert {n for n, p in trainer.model.named_parameters() if p.requires_grad} == {"head.fc.weight", "head.fc.bias"}
    trainer.fit()
    after = load_checkpoint(tmp_path / "tuned").model_state()
    assert (after["stem.0.0.weight"] == trained["stem.0.0.weight"]).all(), "the frozen trunk did not move"
    assert not (after["head.fc.weight"] == state["head.fc.weight"]).all(), "the new classifier trained"
    with pytest.raises(CnnlabError, match="freeze needs trained weights"):
        resolve_config("resnet20", flags={"freeze": "features"})


def test_fine_tuning_across_channel_counts_adapts_the_first_convolution(shapes: Path, tmp_path: Path,
                                                                       capsys) -> None:
    grey = ["--recipe", "digits", "--max-steps", "1", "--set", "eval_batch_size=400"]
    assert main(["train", "resnet20", *grey, "--out", str(tmp_path / "digits")]) == 0
    trained = load_checkpoint(tmp_path / "digits").model_state()["stem.0.0.weight"]
    capsys.readouterr()
    colour = ["--dataset", f"folder:{shapes}", "--max-steps", "1", "--batch-size", "16", "--lr", "0"]
    assert main(["train", "resnet20", *colour, "--init-from", str(tmp_path / "digits"),
                 "--out", str(tmp_path / "rgb")]) == 0
    assert "stem.0.0.weight adapted from 1 to 3 input channel(s) (repeated and scaled by 1/3)" in capsys.readouterr().err
    rgb = load_checkpoint(tmp_path / "rgb").model_state()["stem.0.0.weight"]
    # A grey image copied into the three channels meets the filters the grey run learned.
    assert rgb.shape == (16, 3, 3, 3) and torch.allclose(rgb.sum(dim=1, keepdim=True), trained, atol=1e-6)
    assert main(["train", "resnet20", *grey, "--init-from", str(tmp_path / "rgb"), "--out", str(tmp_path / "back")]) == 0
    assert "adapted from 3 to 1 input channel(s) (summed)" in capsys.readouterr().err


def test_a_resume_with_more_epochs_says_it_stretches_the_schedule(tmp_path: Path, capsys) -> None:
    argv = ["train", "resnet20", "--recipe", "digits", "--max-steps", "4", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv[:-4], "--max-steps", "6", "--out", str(tmp_path / "run"), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "the run is now 6 steps long (it was 4), and its learning-rate schedule is stretched" in err


def test_progress_lines_appear_in_eval_and_seg_style_training(shapes: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes}", "--max-steps", "2", "--batch-size", "16",
                 "--out", str(tmp_path / "run")]) == 0
    assert "epoch 1/1 [####################] 2/2 loss" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--protocol", "10crop"]) == 0
    assert "10crop test [####################]" in capsys.readouterr().err


def test_cli_habits(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("cnnlab 0.")
    done = subprocess.run([sys.executable, "-m", "cnnlab", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("cnnlab ")
    names = list_models("resnet1*")
    assert names.index("resnet18") < names.index("resnet101") < names.index("resnet110") < names.index("resnet1202")
    assert main(["models", "densnet*"]) == 2
    assert "no model matches 'densnet*'; close names: densenet" in capsys.readouterr().err
    assert main(["train", "resnet50", "--dataset", "digits", "--max-steps", "1"]) == 2
    assert "--set 'preprocess=[{name: resize, size: 224}]'" in capsys.readouterr().err


def test_a_folder_smaller_than_the_default_batch_trains_with_the_batch_clamped(shapes: Path, tmp_path: Path,
                                                                                 capsys) -> None:
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes}", "--epochs", "2",
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "batch_size 128 is larger than the training set (96 images): training with batches of 96" in err
    assert load_checkpoint(tmp_path / "run").meta["step"] == 2, "one step of all 96 images per epoch"


def test_a_first_decode_and_a_progress_bar_speak_before_the_long_work(shapes: Path, tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    import io

    import cnnlab.data.folder as folder
    from cnnlab.progress import Progress

    def slow_step(*args, **kwargs):  # stands for decoding every image
        raise KeyboardInterrupt

    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(folder, "_decode_all", slow_step)
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes}", "--out", str(tmp_path / "run")]) == 130
    assert f"decoding {shapes.name}/train (once: cached in {tmp_path / 'cache'}" in capsys.readouterr().err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    Progress("epoch 1/90", 390, stream=terminal)
    assert terminal.getvalue().startswith("epoch 1/90 [....................] 0/390"), "drawn before the first step"


def test_predict_of_a_missing_image_says_where_it_looked(shapes: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes}", "--max-steps", "1", "--batch-size", "16",
                 "--out", str(tmp_path / "run")]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["predict", "run", "digit.png"]) == 2
    assert capsys.readouterr().err == f"cnnlab: error: image digit.png not found (looked in {tmp_path}): give the file's path\n"


def test_a_run_on_a_relative_folder_is_evaluated_from_anywhere(shapes: Path, tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    monkeypatch.chdir(shapes.parent)
    assert main(["train", "resnet20", "--dataset", f"folder:{shapes.name}", "--max-steps", "1", "--batch-size", "16",
                 "--out", str(tmp_path / "run")]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "run"]) == 0
    assert f"on folder:{shapes} test (32 images" in capsys.readouterr().out
