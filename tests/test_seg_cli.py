"""`cnnlab train unet` and `cnnlab predict` of a U-Net run, and the ISBI 2012 reader, end to end."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.commands import main
from cnnlab.segment.data import kfold_splits, load_isbi2012


def test_kfold_splits_partition_the_stack():
    splits = kfold_splits(30, 3)
    assert [val for _, val in splits] == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    for train, val in splits:
        assert sorted(train + val) == list(range(30))
    with pytest.raises(ValueError, match="folds"):
        kfold_splits(30, 1)


def test_isbi2012_reader(data_dir):
    images, cells = load_isbi2012(data_dir, "train")
    assert images.shape == cells.shape == (30, 512, 512) and images.dtype == np.uint8
    assert 0.7 < cells.mean() < 0.85  # the README: about 78 % cell (white)
    test_images, no_labels = load_isbi2012(data_dir / "isbi2012", "test")
    assert test_images.shape == (30, 512, 512) and no_labels is None


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    # One thread: on a shared 2-core machine two threads of tiny convolutions mostly wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    # Width 2 and 4 px output tiles: 30 tiny steps, a pipeline check, not a model.
    args = ["train", "unet", "--dataset", "isbi2012", "--data-dir", str(data_dir), "--out", str(out),
            "--width", "2", "--tile", "4", "--epochs", "1", "--lr", "0.001"]
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_train_writes_a_checkpoint(trained_run):
    record = json.loads((trained_run / "checkpoints" / "last.json").read_text())
    assert record["model"]["name"] == "unet" and record["step"] == 30
    assert record["model"]["kwargs"]["width"] == 2 and record["task"]["options"]["weight_map"] is True
    assert (trained_run / "checkpoints" / record["tensors"]).is_file()


def test_predict_writes_probabilities_and_overlay(trained_run, tmp_path, capsys):
    image = (np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "slice.png")
    out = tmp_path / "pred"
    image_file = str(tmp_path / "slice.png")
    assert main(["predict", str(trained_run), image_file, "--out", str(out), "--tile", "20"]) == 0
    with Image.open(out / "slice_prob.png") as prob:
        assert prob.size == (56, 40) and prob.mode.startswith("I")
    with Image.open(out / "slice_overlay.png") as overlay:
        assert overlay.size == (56, 40) and overlay.mode == "RGB"
    assert main(["predict", str(trained_run / "checkpoints" / "last.json"), str(tmp_path / "slice.png"), "--out", str(out),
                 "--tile", "20", "--format", "npy"]) == 0
    prob = np.load(out / "slice_prob.npy")
    assert prob.shape == (40, 56) and 0 <= prob.min() and prob.max() <= 1


def test_predict_chooses_the_tile_and_precision(trained_run, tmp_path):
    image = (np.random.default_rng(1).random((40, 56)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "slice.png")
    probs = {}
    for name, flags in {"auto": [], "tile": ["--tile", "20"], "bf16": ["--precision", "bf16"]}.items():
        precision = [] if name == "bf16" else ["--precision", "fp32"]
        assert main(["predict", str(trained_run), str(tmp_path / "slice.png"), "--out", str(tmp_path / name),
                     "--format", "npy", *flags, *precision]) == 0
        probs[name] = np.load(tmp_path / name / "slice_prob.npy")
    # The run set no eval_tile: one automatic 52 x 68 px tile, the same map as 20 px tiles.
    np.testing.assert_allclose(probs["auto"], probs["tile"], atol=1e-5)
    np.testing.assert_allclose(probs["bf16"], probs["auto"], atol=0.05)  # the tolerance of tests/test_tiling.py


def test_inference_tile_is_the_flag_then_the_runs_choice_then_auto():
    from types import SimpleNamespace

    from cnnlab.segment.task import SegOptions, inference_tile
    from cnnlab.train.config import options_from_dict

    chose = SimpleNamespace(meta={"config": {"task": {"eval_tile": 196}}, "task": {"options": {"eval_tile": 196}}})
    old_default = SimpleNamespace(meta={"config": {"task": {}}, "task": {"options": {"eval_tile": 388}}})
    assert inference_tile(chose, {"tile": 100}) == 100
    assert inference_tile(chose, {"tile": None}) == 196
    assert inference_tile(old_default, {}) is None  # 388 was only the old default: choose per image
    assert SegOptions().eval_tile is None and options_from_dict(SegOptions, {"eval_tile": 388}, "").eval_tile == 388


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "missing"), "x.png"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["train", "unet", "--tile", "390"]) == 2
    assert "nearest valid output sizes: 388, 404" in capsys.readouterr().err


def _synthetic_isbi(root):
    """30 slices laid out as ISBI 2012: a grid of 16 px cells separated by 2 px darker membranes."""
    cells = np.ones((64, 64), dtype=bool)
    cells[::16] = cells[1::16] = False
    cells[:, ::16] = cells[:, 1::16] = False
    for folder, array in (("image", np.where(cells, 200, 40)), ("label", np.where(cells, 255, 0))):
        (root / "train" / folder).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(array.astype(np.uint8)).save(root / "train" / folder / f"{i}.png")
    return root


def test_cross_validate_scores_every_fold(tmp_path):
    from cnnlab.train import cross_validate, resolve_config

    data = _synthetic_isbi(tmp_path / "isbi2012")
    config = resolve_config("unet", flags={"data_dir": str(data), "folds": 15, "epochs": 1, "model_kwargs.width": 2,
                                           "task.tile": 20, "task.eval_tile": 20})
    summary = cross_validate(config, tmp_path / "run", max_folds=2, stream=io.StringIO())
    rows = [{k: fold[f"val_{k}_err"] for k in ("pixel", "rand", "warping")} for fold in summary["folds"]]
    assert len(rows) == 2 and all(0 <= v <= 1 for r in rows for v in r.values())
    record = json.loads((tmp_path / "run" / "fold-2" / "checkpoints" / "last.json").read_text())
    assert {k: record["metrics"][f"val_{k}_err"] for k in rows[1]} == rows[1]


def test_eval_says_what_it_does_before_the_long_inference(trained_run, monkeypatch, capsys):
    import cnnlab.segment.task as segment_task

    def slow_step(*args, **kwargs):  # stands for the long overlap-tile inference
        raise KeyboardInterrupt

    monkeypatch.setattr(segment_task, "cell_probabilities", slow_step)
    assert main(["eval", str(trained_run)]) == 130
    assert "overlap-tile inference on" in capsys.readouterr().err, "a line before the long step, not after it"

