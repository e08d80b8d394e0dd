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
from cnnlab.studies.verdicts import INCONCLUSIVE, REPRODUCED, UNTESTABLE

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


def _table_runs(tmp_path: Path, gains: dict[str, float], wobble: dict[str, float]) -> dict[str, list[Run]]:
    """Two seeds of every variant on every dataset (fold 1 of the CV sets): rand at 0.80 plus a
    per-dataset wobble, the others at rand + their gain, varied a little by dataset."""
    runs = {}
    for i, dataset in enumerate(kim.DATASETS):
        fold = 1 if dataset in kim.CV_DATASETS else None
        for variant in kim.VARIANTS:
            name = kim.Cell(dataset, fold, variant).name
            base = 0.80 + gains[variant] + wobble[variant] * (-1) ** i
            runs[name] = [_run(tmp_path, name, seed, [0.5, 0.9], [0.5, base + 0.004 * seed]) for seed in (0, 1)]
    return runs


def _judged(tmp_path: Path, gains: dict[str, float], wobble: dict[str, float]) -> tuple[dict, dict]:
    """The numbers, and the claims' tests as they would decide with Kim's vectors."""
    numbers = kim.STUDY.measure(_table_runs(tmp_path, gains, wobble), "fast")
    return numbers, {c.claim.split(":")[-1].strip(): c for c in kim.tests_of(numbers["accuracy"])}


def test_without_kims_vectors_every_claim_is_untestable_here_with_its_test_shown(tmp_path: Path) -> None:
    numbers = kim.STUDY.measure(_table_runs(tmp_path, {"rand": 0.0, "static": 0.04, "non-static": 0.045,
                                                       "multichannel": 0.045}, dict.fromkeys(kim.VARIANTS, 0.01)), "fast")
    for mode in ("fast", "paper"):
        checks = kim.STUDY.judge(numbers, mode).checks
        assert [c.verdict for c in checks] == [UNTESTABLE] * 4
        assert all("not available offline" in c.reason for c in checks)
    assert "the test alone: reproduced" in checks[0].reason and checks[0].details["test"]["p"] < 0.05


def test_clear_gains_are_reproduced_by_direction_and_a_tie_is_a_tie(tmp_path: Path) -> None:
    numbers, checks = _judged(tmp_path, {"rand": 0.0, "static": 0.040, "non-static": 0.045, "multichannel": 0.045},
                              {"rand": 0.0, "static": 0.01, "non-static": 0.01, "multichannel": 0.01})
    assert checks["CNN-static - CNN-rand"].verdict == REPRODUCED
    assert checks["CNN-non-static - CNN-rand"].verdict == REPRODUCED
    assert all(checks[c].details["paired"] and checks[c].fidelity == "proxy" for c in ("CNN-static - CNN-rand",))
    # Kim's own Table 2 does not make fine-tuning significant over the six datasets: the design cannot show it.
    assert checks["CNN-non-static - CNN-static"].verdict == UNTESTABLE
    assert checks["multichannel - the better single channel, within ±1 point"].verdict == REPRODUCED
    assert numbers["accuracy"]["trec"]["rand"] == pytest.approx([0.80, 0.804])
    assert numbers["words_with_vectors"]["mr"] == (9, 10)
    kim_static = [KIM_TABLE2["static"][d] - KIM_TABLE2["rand"][d] for d in kim.DATASETS]
    assert f"mean +{sum(kim_static) / len(kim_static):.2f} points" in checks["CNN-static - CNN-rand"].paper
    write_figure(lambda fig: kim.STUDY.draw(fig, {}, numbers), tmp_path / "figure.png")
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_a_proxy_never_reads_not_reproduced(tmp_path: Path) -> None:
    _, checks = _judged(tmp_path, {"rand": 0.0, "static": -0.040, "non-static": 0.0, "multichannel": -0.05},
                        {"rand": 0.0, "static": 0.005, "non-static": 0.02, "multichannel": 0.005})
    assert checks["CNN-static - CNN-rand"].verdict == INCONCLUSIVE  # significant, the wrong way, on a proxy
    assert "opposite direction" in checks["CNN-static - CNN-rand"].reason
    assert checks["CNN-non-static - CNN-rand"].verdict == INCONCLUSIVE  # +-2 points around zero
    assert checks["multichannel - the better single channel, within ±1 point"].verdict == INCONCLUSIVE
