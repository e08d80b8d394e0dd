"""Nothing a user has is lost, and no checkpoint with bad numbers is called good: the
regressions of the reliability issue, each failing before its fix, and a kill test
that strikes in the middle of saves."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes

from cnnlab.commands import main
from cnnlab.errors import CnnlabError
from cnnlab.train import NonFiniteLossError, Trainer, load_checkpoint
from cnnlab.checkpoint import NonFiniteTensorsError, save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from test_checkpoint import _tiny_config  # noqa: E402


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    Trainer(_tiny_config(deterministic=False, max_steps=4), tmp_path / "run").fit()
    return tmp_path / "run"


def test_resume_with_no_loadable_checkpoint_stops_and_deletes_nothing(finished_run: Path) -> None:
    for name in ("last.json", "best.json"):
        record = finished_run / "checkpoints" / name
        record.write_text(record.read_text().replace('"format_version": 1', '"format_version": 2'))
    before = _files(finished_run / "checkpoints")
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        with pytest.raises(CnnlabError, match="no checkpoint in .* can be resumed.*nothing was changed"):
            Trainer(_tiny_config(deterministic=False, max_steps=8), finished_run, resume=True).fit()
    assert _files(finished_run / "checkpoints") == before


def test_resume_into_a_folder_without_a_run_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="nothing to resume in .*typo_dir"):
        Trainer(_tiny_config(), tmp_path / "typo_dir", resume=True)
    assert not (tmp_path / "typo_dir").exists()


def test_out_into_a_folder_that_is_not_a_run_is_refused(tmp_path: Path, capsys) -> None:
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "config.yaml").write_text("mine")
    (project / "notes.txt").write_text("mine too")
    assert main(["train", "resnet20", "--dataset", "digits", "--max-steps", "1", "--out", str(project)]) == 2
    assert "holds files that are not a cnnlab run (notes.txt)" in capsys.readouterr().err
    assert (project / "config.yaml").read_text() == "mine" and sorted(os.listdir(project)) == ["config.yaml",
                                                                                                "notes.txt"]


def test_word2vec_never_writes_over_its_corpus(tmp_path: Path, capsys) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c\n" * 10)
    assert main(["text", "word2vec", str(corpus), "--out", str(corpus)]) == 2
    assert "is the corpus itself" in capsys.readouterr().err and corpus.read_text() == "a b c\n" * 10
    assert main(["text", "word2vec", str(corpus), "--out", str(tmp_path / "v.txt"), "--threads", "-2"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["text", "word2vec", str(corpus), "--out", str(tmp_path / "v.txt"), "--device", "cuda"]) == 2
        assert "no GPU is available" in capsys.readouterr().err


def test_an_unknown_best_metric_fails_before_training(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="best_metric 'foo' is not one of this task's metrics: test_loss"):
        Trainer(_tiny_config(best_metric="foo"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_huge_learning_rate_never_leaves_a_checkpoint_with_bad_numbers(tmp_path: Path) -> None:
    config = _tiny_config(deterministic=False, max_steps=20, optimizer={"name": "sgd", "lr": 1e6},
                          schedule={"name": "constant"})
    with pytest.raises(NonFiniteLossError, match="last good checkpoint|no checkpoint was written"):
        Trainer(config, tmp_path / "run").fit()
    for record in (tmp_path / "run" / "checkpoints").glob("*.json"):
        state = load_checkpoint(record).tensors
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("grad_clip", [None, 2.0])
def test_an_infinite_gradient_with_a_finite_loss_stops_before_the_update(tmp_path: Path, grad_clip) -> None:
    trainer = Trainer(_tiny_config(deterministic=False, grad_clip=grad_clip), tmp_path / "run")
    weight = next(trainer.model.parameters())
    before = weight.detach().clone()
    weight.register_hook(lambda grad: grad * float("inf"))
    with pytest.raises(NonFiniteLossError, match="gradient norm is (nan|inf) .* at step 1 .*no checkpoint"):
        trainer.fit()
    assert torch.equal(weight.detach(), before)


def _poison(record: Path) -> None:
    """Puts a NaN into a checkpoint's tensors and re-hashes it, as an old or hostile writer could."""
    meta = json.loads(record.read_text())
    tensors_file = record.parent / meta["tensors"]
    tensors = tensors_from_bytes(tensors_file.read_bytes())
    key = next(k for k, v in tensors.items() if k.startswith("model.") and v.is_floating_point())
    tensors[key] = torch.full_like(tensors[key], math.nan)
    data = tensors_to_bytes(tensors)
    tensors_file.write_bytes(data)
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    record.write_text(json.dumps(meta))


def test_non_finite_checkpoints_are_neither_written_nor_loaded_unless_asked(finished_run: Path, capsys) -> None:
    with pytest.raises(NonFiniteTensorsError, match="1 tensor.* hold NaN or Inf"):
        save_checkpoint(finished_run / "other", "last", {"model.w": torch.tensor([1.0, math.inf])}, {"step": 0})
    assert not (finished_run / "other").exists()
    _poison(finished_run / "checkpoints" / "best.json")
    best = str(finished_run / "checkpoints" / "best.json")
    assert main(["eval", best]) == 2
    assert "hold NaN or Inf" in capsys.readouterr().err
    assert main(["eval", best, "--allow-nonfinite"]) == 0
    assert main(["eval", best, "--batch-size", "-1"]) == 2
    assert "--batch-size must be a positive integer" in capsys.readouterr().err


def test_best_is_rederived_on_resume_after_a_crash_between_last_and_best(finished_run: Path) -> None:
    checkpoints = finished_run / "checkpoints"
    last = json.loads((checkpoints / "last.json").read_text())
    # The crash: `last` recorded an improvement that `best` never received.
    stale = {**last, "step": 1, "metrics": {**last["metrics"], "test_top1_err": 0.99}}
    (checkpoints / "best.json").write_text(json.dumps(stale))
    trainer = Trainer(_tiny_config(deterministic=False, max_steps=4), finished_run, resume=True)
    assert trainer.best == {"metric": "test_top1_err", "value": last["metrics"]["test_top1_err"], "step": 4}
    assert load_checkpoint(checkpoints / "best.json").step == 4


def test_resume_falls_back_when_the_newest_checkpoint_does_not_fit_the_model(finished_run: Path) -> None:
    checkpoints = finished_run / "checkpoints"
    last = load_checkpoint(checkpoints / "last.json")
    tensors = {k: v for k, v in last.tensors.items() if k != "model.head.fc.bias"}
    save_checkpoint(checkpoints, "broken", tensors, {**{k: v for k, v in last.meta.items()
                                                       if k not in ("format", "tensors", "sha256")}, "step": 9})
    with pytest.warns(UserWarning, match="broken.json: it does not fit the model"):
        trainer = Trainer(_tiny_config(deterministic=False, max_steps=10), finished_run, resume=True)
    assert trainer.step == 4


def test_a_changed_setting_on_resume_shows_the_old_and_new_values(finished_run: Path) -> None:
    with pytest.raises(CnnlabError, match=r"batch_size: 32 -> 16"):
        Trainer(_tiny_config(deterministic=False, max_steps=4, batch_size=16), finished_run, resume=True)


def test_deterministic_mode_ends_with_the_run(tmp_path: Path) -> None:
    assert not torch.are_deterministic_algorithms_enabled()
    Trainer(_tiny_config(max_steps=1), tmp_path / "run").fit()
    assert not torch.are_deterministic_algorithms_enabled()


# ----- kill -9 in the middle of saves -----

CHILD = textwrap.dedent(
    """
    import os, sys, time, torch
    sys.path.insert(0, {tests!r})
    import cnnlab.files
    from test_checkpoint import _tiny_config
    from cnnlab.train import Trainer

    torch.set_num_threads(1)
    real_fsync = os.fsync

    def slow_fsync(fd):
        # Every save fsyncs its temporary file and the folder: announce it and give the
        # parent time to strike while the file is half-way to its place.
        print("FSYNC", flush=True)
        time.sleep(0.02)
        real_fsync(fd)

    cnnlab.files.os.fsync = slow_fsync
    Trainer(_tiny_config(), {run!r}, resume={resume}).fit()
    print("DONE", flush=True)
    """
)


def _run_until_killed(run: Path, resume: bool, strike_at: int) -> bool:
    """Runs the tiny training in a child; SIGKILLs it at its ``strike_at``-th fsync. True when it finished."""
    script = CHILD.format(tests=str(Path(__file__).parent), run=str(run), resume=resume)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    try:
        seen = 0
        for line in child.stdout:
            if line.startswith("DONE"):
                child.wait()
                return True
            seen += 1
            if seen == strike_at:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                return False
        child.wait()
        raise AssertionError(f"the child ended without finishing (status {child.returncode})")
    finally:
        child.kill()


def test_kill_during_saves_then_resume_ends_equal_to_an_uninterrupted_run(tmp_path: Path) -> None:
    Trainer(_tiny_config(), tmp_path / "straight").fit()
    expected = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.json")
    expected_best = load_checkpoint(tmp_path / "straight" / "checkpoints" / "best.json")
    rng = random.Random(0)
    run, kills = tmp_path / "killed", 0
    resume = False
    while not _run_until_killed(run, resume, rng.randint(4, 20)):
        kills += 1
        resume = (run / "checkpoints").is_dir() and any((run / "checkpoints").glob("*.json"))
        assert kills < 30, "the run never finished"
    assert kills >= 3
    got = load_checkpoint(run / "checkpoints" / "last.json")
    got_best = load_checkpoint(run / "checkpoints" / "best.json")
    for want, have in ((expected, got), (expected_best, got_best)):
        assert want.step == have.step and want.tensors.keys() == have.tensors.keys()
        for key, value in want.tensors.items():
            assert torch.equal(value, have.tensors[key]), key
    assert not list((run / "checkpoints").glob(".*.tmp")), "killed saves' temporaries are cleaned up"



def test_a_float64_or_empty_batch_is_refused_by_the_input_check() -> None:
    import cnnlab

    model = cnnlab.create_model("resnet20").eval()
    with pytest.raises(CnnlabError, match="float32 weights and got a torch.float64 batch"):
        model(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(CnnlabError, match="empty batch"):
        model(torch.randn(0, 3, 32, 32))
