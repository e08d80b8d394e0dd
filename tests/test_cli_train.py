"""``cnnlab train`` and ``cnnlab eval`` end to end on the embedded digits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from cnnlab.commands import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Three bf16 + channels_last steps of resnet20 on the raw 8x8 digits, one
    # evaluation: every output of a run, in a few seconds.
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "resnet20", "--dataset", "digits", "--max-steps", "3", "--batch-size", "16", "--lr", "0.05",
                 "--precision", "bf16", "--channels-last", "--out", str(out), "--set", "optimizer.nesterov=true"])
    assert code == 0
    return out


def test_train_writes_config_metrics_events_curves_and_checkpoints(run_dir: Path, capsys) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    # The default optimiser of a run without a recipe, with --lr on top.
    assert config["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
    assert (config["precision"], config["channels_last"], config["max_steps"]) == ("bf16", True, 3)
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 1 and rows[0]["step"] == "3" and 0 <= float(rows[0]["test_top1_err"]) <= 100
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = json.loads((run_dir / "checkpoints" / "last.json").read_text())
    assert last["step"] == 3 and last["config"] == config
    assert (run_dir / "checkpoints" / "best.json").is_file()


def test_eval_runs_each_protocol_and_an_ensemble(run_dir: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--dataset", "digits", "--protocol", "10crop"]) == 0
    out = capsys.readouterr().out
    assert "355 images, 10crop" in out and "top-1 error" in out
    best = str(run_dir / "checkpoints" / "best.json")
    assert main(["eval", best, "--dataset", "digits", "--ensemble", best]) == 0
    assert "ensemble of 2" in capsys.readouterr().out


def test_resume_of_a_finished_run_continues_to_a_longer_one(run_dir: Path, capsys) -> None:
    assert main(["train", "resnet20", "--dataset", "digits", "--max-steps", "5", "--batch-size", "16", "--lr", "0.05",
                 "--precision", "bf16", "--channels-last", "--out", str(run_dir), "--resume",
                 "--set", "optimizer.nesterov=true"]) == 0
    assert "after 5 steps (0.0556 epochs)" in capsys.readouterr().out
    assert json.loads((run_dir / "checkpoints" / "last.json").read_text())["step"] == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "resnet2", "--dataset", "digits"], "unknown model 'resnet2'"),
        (["train", "resnet20", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "resnet20", "--set", "epoch=3"], "unknown config key(s) epoch"),
        (["train", "resnet20", "--recipe", "nowhere.yaml"], "recipe nowhere.yaml not found"),
        (["eval", "nowhere.json", "--dataset", "digits"], "checkpoint nowhere.json not found"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and message in err and err.count("\n") == 1


def test_a_finished_run_is_not_overwritten_without_resume(run_dir: Path, capsys) -> None:
    assert main(["train", "resnet20", "--dataset", "digits", "--out", str(run_dir)]) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert main(["train", "resnet20", "--dataset", "digits", "--out", str(run_dir), "--resume", "--lr", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "different settings (" in err and "optimizer" in err
