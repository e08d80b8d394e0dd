"""The kim-cnn-variants study: its arms, Kim's protocol for the reported accuracy, the verdicts over datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.models.textcnn import KIM_TABLE2
from cnnlab.studies import get_study
from cnnlab.studies.catalog import kim_cnn_variants as kim
from cnnlab.studies.framework import Run, arm_config
from cnnlab.studies.report import write_figure
from cnnlab.studies.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED

STUDY = get_study("kim-cnn-variants")


def _run(tmp_path: Path, arm: str, seed: int, dev: list[float], test: list[float]) -> Run:
    run_dir = tmp_path / f"{arm}-{seed}"
    (run_dir / "checkpoints").mkdir(parents=True)
    task = {"words_with_vectors": 9, "vocab": ["<pad>"] + [f"w{i}" for i in range(10)]}
    (run_dir / "checkpoints" / "last.json").write_text(json.dumps({"task": task}))
    rows = [{"epoch": e + 1, "dev_accuracy": d, "test_accuracy": t} for e, (d, t) in enumerate(zip(dev, test))]
    return Run(arm, seed, run_dir, "", rows)


def test_every_variant_runs_on_every_dataset_and_fold_with_the_vectors_dimension() -> None:
    names = {arm.name for arm in STUDY.arms}
    assert len(names) == 4 * (4 * 10 + 2)  # 4 variants; MR, Subj, CR, MPQA x 10 folds; SST-2 and TREC
    assert {"mr-fold10-multichannel", "trec-rand", "sst2-static"} <= names
    rand = arm_config(STUDY, next(a for a in STUDY.arms if a.name == "mr-fold3-rand"), "paper", 0)
    assert (rand.model_kwargs, rand.folds, rand.fold, rand.task) == ({"variant": "rand", "embed_dim": 50}, 10, 3, {})
    static = arm_config(STUDY, next(a for a in STUDY.arms if a.name == "trec-static"), "paper", 0)
    assert static.task["vectors"].endswith("glove.6B.50d.bin") and static.folds == 1 and static.epochs == 25
    fast = STUDY.arms_of("fast")
    assert all(kim.CELLS[a.name].fold in (None, 1) for a in fast) and len(fast) % 4 == 0


def test_the_reported_accuracy_is_the_best_dev_epochs_the_later_on_a_tie(tmp_path: Path) -> None:
    run = _run(tmp_path, "trec-rand", 0, dev=[0.5, 0.8, 0.7, 0.8, 0.6], test=[0.4, 0.70, 0.9, 0.75, 0.95])
    assert kim.reported_accuracy(run) == 0.75


def _table_runs(tmp_path: Path, gains: dict[str, dict[str, float]]) -> dict[str, list[Run]]:
    """Two seeds of every variant on MR fold 1 and TREC: rand at 0.80 + a per-seed wobble, the others at rand + gain."""
    runs = {}
    for dataset, fold in (("mr", 1), ("trec", None), ("cr", 1)):
        for variant in kim.VARIANTS:
            name = kim.Cell(dataset, fold, variant).name
            accs = [0.80 + gains[dataset][variant] + wobble for wobble in (0.0, 0.004)]
            runs[name] = [_run(tmp_path, name, seed, [0.5, 0.9], [0.5, acc]) for seed, acc in enumerate(accs)]
    return runs


def test_clear_gains_on_every_dataset_are_reproduced_and_a_tie_is_a_tie(tmp_path: Path) -> None:
    gains = {"mr": {"rand": 0.0, "static": 0.040, "non-static": 0.045, "multichannel": 0.044},
             "trec": {"rand": 0.0, "static": 0.020, "non-static": 0.026, "multichannel": 0.027},
             "cr": {"rand": 0.0, "static": 0.050, "non-static": 0.052, "multichannel": 0.050}}
    analysis = kim.analyse(_table_runs(tmp_path, gains), "fast")
    verdicts = {c.claim.split(":")[-1].strip(): c.verdict for c in analysis.checks}
    assert verdicts["CNN-static - CNN-rand"] == REPRODUCED
    assert verdicts["CNN-non-static - CNN-rand"] == REPRODUCED
    # +0.5, +0.6, +0.2 points against Kim's mean of (0.5 + 0.8 - 0.4) / 3 = 0.3 over these three datasets
    assert verdicts["CNN-non-static - CNN-static"] == REPRODUCED
    assert verdicts["multichannel - the better single channel, within ±1 point"] == REPRODUCED
    assert analysis.numbers["differences"]["static - rand"] == pytest.approx({"mr": 0.04, "trec": 0.02, "cr": 0.05})
    assert analysis.numbers["accuracy"]["trec"]["rand"] == pytest.approx([0.80, 0.804])
    assert analysis.numbers["words_with_vectors"] == {"mr": (9, 10), "trec": (9, 10), "cr": (9, 10)}
    assert "mean +3.67 points over 3 datasets" in analysis.checks[0].measured
    kim_mean = (KIM_TABLE2["static"]["mr"] + KIM_TABLE2["static"]["trec"] + KIM_TABLE2["static"]["cr"]
                - KIM_TABLE2["rand"]["mr"] - KIM_TABLE2["rand"]["trec"] - KIM_TABLE2["rand"]["cr"]) / 3
    assert f"mean +{kim_mean:.2f} points" in analysis.checks[0].paper
    write_figure(analysis, tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_losses_and_spread_give_the_other_verdicts(tmp_path: Path) -> None:
    gains = {"mr": {"rand": 0.0, "static": -0.04, "non-static": 0.01, "multichannel": -0.05},
             "trec": {"rand": 0.0, "static": -0.03, "non-static": -0.02, "multichannel": -0.04},
             "cr": {"rand": 0.0, "static": -0.05, "non-static": -0.01, "multichannel": -0.04}}
    checks = kim.analyse(_table_runs(tmp_path, gains), "fast").checks
    assert checks[0].verdict == NOT_REPRODUCED  # static loses to rand on every dataset
    assert checks[1].verdict == INCONCLUSIVE  # non-static - rand: +1, -2, -1 points
    assert checks[3].verdict == NOT_REPRODUCED  # multichannel 2 to 6 points under the better single channel


def test_the_tie_rule() -> None:
    assert kim.tie_verdict([0.002, -0.003, 0.001]) == REPRODUCED
    assert kim.tie_verdict([-0.03, -0.025, -0.035]) == NOT_REPRODUCED
    assert kim.tie_verdict([0.02, -0.03, 0.001]) == INCONCLUSIVE
    assert kim.tie_verdict([0.0]) == INCONCLUSIVE  # one dataset: no spread, no verdict
