"""Checkpoints: atomic safetensors + JSON pairs, corruption handling, pickle refusal.
(A bit-exact resume after a real ``kill -9``, for every task: tests/test_engine.py;
kills in the middle of saves: tests/test_reliability.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnlab.commands import main
from cnnlab.errors import CnnlabError
from cnnlab.train import TrainConfig, Trainer, load_checkpoint, load_model, save_checkpoint
from cnnlab.checkpoint import latest_checkpoint


def _tiny_config(**changes) -> TrainConfig:
    # resnet20 on the raw 8x8 digits: real data, a real model, a few ms per step.
    values = dict(model="resnet20", dataset="digits", epochs=1, max_steps=8, batch_size=32,
                  optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
                  schedule={"name": "multistep", "milestones": [5], "unit": "step", "warmup": 2},
                  augment=[{"name": "random_crop_flip", "padding": 1}], normalize={"mean": [0.3], "std": [0.4]},
                  deterministic=True, checkpoint_every=1, eval_batch_size=400)
    values.update(changes)
    return TrainConfig(**values)



def test_round_trip_keeps_every_tensor_and_value(tmp_path: Path) -> None:
    tensors = {"model.w": torch.randn(3, 4), "model.n": torch.tensor(7), "rng.torch": torch.get_rng_state()}
    path = save_checkpoint(tmp_path, "last", tensors, {"step": 5, "note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.step == 5 and loaded.meta["note"] == "x"
    assert all(torch.equal(loaded.tensors[k], v) for k, v in tensors.items())
    assert loaded.model_state().keys() == {"w", "n"}
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must be renamed away"


def test_unused_tensor_files_are_removed_and_shared_ones_kept(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "best", {"a": torch.zeros(2)}, {"step": 1})
    save_checkpoint(tmp_path, "last", {"a": torch.zeros(2)}, {"step": 1})
    assert len(list(tmp_path.glob("*.safetensors"))) == 1, "identical tensors are stored once"
    save_checkpoint(tmp_path, "last", {"a": torch.ones(2)}, {"step": 2})
    assert len(list(tmp_path.glob("*.safetensors"))) == 2, "best's file must survive a new last"
    save_checkpoint(tmp_path, "best", {"a": torch.ones(2)}, {"step": 2})
    assert len(list(tmp_path.glob("*.safetensors"))) == 1


def test_corrupt_checkpoint_is_refused_and_skipped_on_resume(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "best", {"a": torch.zeros(4)}, {"step": 3})
    last = save_checkpoint(tmp_path, "last", {"a": torch.ones(4)}, {"step": 9})
    tensors_file = tmp_path / json.loads(last.read_text())["tensors"]
    data = bytearray(tensors_file.read_bytes())
    data[-1] ^= 0xFF
    tensors_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(last)
    with pytest.warns(UserWarning, match="skipping checkpoint .*last.json"):
        newest = latest_checkpoint(tmp_path)
    assert newest is not None and newest.step == 3


def test_pickle_payloads_are_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("last.json", "weights.pt"):
        torch.save({"x": Payload()}, tmp_path / name)
        with pytest.raises(ValueError, match="pickle payload"):
            load_checkpoint(tmp_path / name)
    assert not marker.exists()


def test_non_checkpoint_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"step": 1}')
    with pytest.raises(ValueError, match="not a cnnlab checkpoint"):
        load_checkpoint(tmp_path / "other.json")


@pytest.mark.parametrize("edit", [
    lambda meta: meta["model"]["kwargs"].update(shortcut_kind="Z2"),  # an option the builder has not got
    lambda meta: meta.pop("model"),
    lambda meta: meta["model"].pop("num_classes"),
])
def test_a_record_that_does_not_fit_its_builder_is_one_line_naming_the_file(edit, tmp_path: Path, capsys) -> None:
    Trainer(_tiny_config(max_steps=1, checkpoint_every=0), tmp_path / "run").fit()
    record = tmp_path / "run" / "checkpoints" / "last.json"
    assert not load_model(tmp_path / "run").training, "the one loader takes a path too"
    meta = json.loads(record.read_text())
    edit(meta)
    record.write_text(json.dumps(meta))
    capsys.readouterr()
    with pytest.raises(CnnlabError, match=f"{record}: its model record does not fit the builder"):
        load_model(load_checkpoint(record))
    for argv in (["eval", str(record)],
                 ["train", "resnet20", "--max-steps", "1", "--init-from", str(record), "--out", str(tmp_path / "b")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cnnlab: error: {record}: its model record") and err.count("\n") == 1


def test_load_model_takes_a_str_path_to_a_checkpoint_json_or_a_run(tmp_path: Path) -> None:
    Trainer(_tiny_config(max_steps=1, checkpoint_every=0), tmp_path / "run").fit()
    x = torch.randn(2, 1, 8, 8)
    by_run = load_model(str(tmp_path / "run"))
    by_json = load_model(str(tmp_path / "run" / "checkpoints" / "last.json"))
    with torch.no_grad():
        assert torch.equal(by_run(x), by_json(x))
