"""The test-protocols study: its design (the shared baseline, disjoint ensembles) and its paired verdicts."""

from __future__ import annotations

from pathlib import Path

from cnnlab.studies import get_study
from cnnlab.studies.catalog.test_protocols import MEMBERS, SEEDS, groups
from cnnlab.studies.framework import Run, arm_config, run_name


def test_the_baseline_arm_is_the_shared_resnet20_baseline_in_standard_mode() -> None:
    study, other = get_study("test-protocols"), get_study("squeeze-excitation")
    baseline = next(a for a in other.arms if a.model == "resnet20" and not a.config)
    ours = [run_name(arm_config(study, study.arms[0], "standard", seed)) for seed in range(SEEDS)]
    theirs = [run_name(arm_config(other, baseline, "standard", seed)) for seed in range(other.mode("standard").seeds)]
    assert theirs == ours[:len(theirs)]  # the same runs, and some more seeds of them
    jitter = arm_config(study, study.arms[1], "standard", 0)
    assert jitter.augment[0]["name"] == "scale_augment" and jitter.epochs == arm_config(
        study, study.arms[0], "standard", 0).epochs


def test_ensembles_never_share_a_model() -> None:
    runs = [Run("resnet20", seed, Path("."), "", []) for seed in range(7)]
    ensembles = groups(runs)
    assert [[r.seed for r in g] for g in ensembles] == [[0, 1], [2, 3], [4, 5]]
    assert all(len(g) == MEMBERS for g in ensembles)


def test_every_row_is_a_paired_test_and_a_proxy() -> None:
    study = get_study("test-protocols")
    centre = [0.090, 0.092, 0.088, 0.091, 0.089, 0.093]
    numbers = {"single": {"center": centre, "flip": [v - 0.004 for v in centre],
                          "10crop": [v - 0.003 + 0.0005 * (i % 2) for i, v in enumerate(centre)]},
               "jitter": {"center": [0.10, 0.102, 0.098], "multiscale": [0.097, 0.0985, 0.0955]},
               "ensembles": [0.080, 0.081, 0.0805], "ensemble_members": [0.091, 0.0895, 0.090],
               "ensemble_sizes": {"2": 0.080, "3": 0.078}}
    checks = study.judge(numbers, "standard").checks
    assert [c.verdict for c in checks] == ["reproduced"] * 4
    assert all(c.details["paired"] and c.details["test"]["name"] == "paired t" for c in checks)
    assert {c.fidelity for c in checks} == {"proxy"}  # ImageNet claims tested on CIFAR-10
    fast = study.judge({**numbers, "ensembles": numbers["ensembles"][:1],
                        "ensemble_members": numbers["ensemble_members"][:1]}, "fast").checks
    assert fast[-1].verdict == "inconclusive"  # one ensemble: too few to decide
