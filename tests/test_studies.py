"""The case-study framework: every study in smoke mode, the verdict rules, the commands."""

from __future__ import annotations

import io
import json
import math
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from cnnlab.commands.cli import build_parser, main
from cnnlab.errors import CnnlabError
from cnnlab.studies import all_studies, get_study
from cnnlab.studies.framework import (MODES, Arm, Convergence, Findings, Mode, Run, Study, arm_config, run_lock,
                                      run_name, study_run_name, train_arm, write_rows)
from cnnlab.studies.measures import compare, epochs_to, epochs_to_or_length, last_values
from cnnlab.studies.report import write_summary
from cnnlab.studies.runner import report_study, run_study, runs_root
from cnnlab.studies.verdicts import KINDS, VERDICTS

STUDIES = sorted(all_studies())


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every study's smoke results, and one runs folder they share."""
    return tmp_path_factory.mktemp("studies")


def reads_real_data(study) -> bool:
    """Whether a study's smoke mode needs the shared datasets: a Trainer dataset other than the digits
    cnnlab ships (the word2vec study's own trainer smokes on gensim's bundled Lee corpus)."""
    return study.trainer is None and any(arm_config(study, arm, "smoke", 0).dataset != "digits"
                                         for arm in study.arms_of("smoke"))


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_runs_in_smoke_mode_and_writes_its_three_files(name: str, smoke_dir: Path,
                                                                   request: pytest.FixtureRequest,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    study = get_study(name)
    if reads_real_data(study):  # skipped with the reason without the data, a failure under CI
        monkeypatch.setenv("CNNLAB_DATA", str(request.getfixturevalue("data_dir")))
    out = run_study(study, "smoke", out=smoke_dir / name, runs_dir=smoke_dir / "runs")
    results = json.loads((out / "results.json").read_text())
    assert results["study"] == name and results["mode"] == "smoke"
    assert results["checks"], "a study checks at least one claim"
    assert all(c["verdict"] in VERDICTS and c["kind"] in KINDS and c["paper"] and c["measured"]
               for c in results["checks"])
    assert all({"arms", "paired", "test", "effect", "ci95", "paper_effect", "direction_only"} <= set(c)
               for c in results["checks"] if "arms" in c)
    assert {"cpu", "cores", "torch", "loadavg_before", "loadavg_after"} <= set(results["machine"])
    for run in results["runs"]:
        words = shlex.split(run["command"])
        assert words[0] == "cnnlab"
        build_parser().parse_args(words[1:])  # a command line cnnlab accepts: `cnnlab train`, or the study's own
        if study.trainer is None:
            assert words[1:3] == ["train", run["run"].split("-")[0]]
        assert (out / "runs" / run["run"] / "metrics.csv").is_file()  # kept: the folder re-analyses
    png = (out / "figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000
    report = (out / "report.md").read_text()
    assert "Smoke mode" in report and "## Verdict rule" in report and results["command"] in report
    assert all(f"| {c['claim']} |" in report for c in results["checks"])


@pytest.mark.parametrize("name", STUDIES)
def test_every_mode_of_every_study_resolves_to_valid_configs(name: str) -> None:
    study = get_study(name)
    for mode in study.modes:  # a study may lack a standard mode
        arms = study.arms_of(mode)
        assert len({study_run_name(study, arm, mode, 0) for arm in arms}) == len(arms), "each arm has its own runs"
        if study.trainer is None:  # a study's own trainer checks its keys itself
            for arm in arms:
                assert arm_config(study, arm, mode, 0).model == arm.model


def test_studies_that_share_a_baseline_train_it_once() -> None:
    studies = [get_study(name) for name in ("squeeze-excitation", "shortcuts", "test-protocols", "label-smoothing")]
    assert len({run_name(arm_config(s, s.arms[0], "fast", 0)) for s in studies}) == 1


def test_the_summary_page_gathers_every_study(smoke_dir: Path) -> None:
    done = sorted(p.parent.name for p in smoke_dir.glob("*/results.json"))
    if done != STUDIES:
        pytest.skip("needs every study's smoke run (run the whole file)")
    page = write_summary(smoke_dir).read_text()
    for name in STUDIES:
        assert f"[{name}]({name}/report.md)" in page and f"({name}/figure.png)" in page


def _run(rows: list[dict[str, float]]) -> Run:
    return Run("arm", 0, Path("."), "", rows)


def test_epochs_to_a_training_error_interpolates_between_epoch_middles() -> None:
    run = _run([{"epoch": 1, "train_top1_err": 0.5}, {"epoch": 2, "train_top1_err": 0.3},
                {"epoch": 3, "train_top1_err": 0.2}])
    assert math.isclose(epochs_to(run, "train_top1_err", 0.25), 2.0)  # halfway between 1.5 and 2.5
    assert epochs_to(run, "train_top1_err", 0.1) is None
    assert epochs_to_or_length(run, "train_top1_err", 0.1) == 2.5  # the last training row's middle


# ----- running, resuming, the commands -----

def test_a_finished_run_is_reused_and_an_unfinished_one_needs_resume(tmp_path: Path) -> None:
    study = get_study("squeeze-excitation")
    first = train_arm(study, study.arms[0], "smoke", 0, tmp_path, resume=False)
    again = train_arm(study, study.arms[0], "smoke", 0, tmp_path, resume=False)  # no training: reused
    assert again.run_dir == first.run_dir and again.rows == first.rows
    (first.run_dir.parent / f"{first.run_dir.name}.done").unlink()  # as if the study had been killed
    with pytest.raises(CnnlabError, match="unfinished run.*--resume"):
        train_arm(study, study.arms[0], "smoke", 0, tmp_path, resume=False)
    assert train_arm(study, study.arms[0], "smoke", 0, tmp_path, resume=True).rows == first.rows


def _toy_study(calls: list[tuple[str, int]], spread: float = 1.0) -> Study:
    """Two arms trained by a study's own trainer, which records one row (scores ``spread`` apart
    from seed to seed) and says how to repeat it."""
    def trainer(arm: Arm, keys: dict, seed: int, run_dir: Path) -> str:
        calls.append((arm.name, seed))
        write_rows(run_dir, [{"epoch": 1, "score": keys["score"] + spread * seed, "elapsed_s": 2.0}])
        return f"toy {arm.name} --seed {seed}"

    def judge(numbers: dict, mode: str) -> Findings:
        return Findings([compare("b - a", "2", ("a", numbers["a"]), ("b", numbers["b"]), 2.0, fmt=str)])

    return Study("toy", "b beats a", "none", "none", lambda runs, mode: last_values(runs, "score"), judge,
                 lambda fig, runs, numbers: None, modes={m: Mode(seeds=2) for m in MODES},
                 arms=(Arm("a", "toy", {"score": 1.0}), Arm("b", "toy", {"score": 3.0})), trainer=trainer)


def test_a_study_with_its_own_trainer_runs_reuses_and_restarts_its_runs(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    study, runs = _toy_study(calls), tmp_path / "runs"
    results = json.loads((run_study(study, "smoke", out=tmp_path / "toy", runs_dir=runs) / "results.json").read_text())
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]  # arms interleaved, seed by seed
    assert [r["command"] for r in results["runs"]] == ["toy a --seed 0", "toy a --seed 1", "toy b --seed 0",
                                                       "toy b --seed 1"]
    assert results["runs"][3]["final"] == {"epoch": 1.0, "score": 4.0, "elapsed_s": 2.0}
    # Two seeds an arm: whatever the effect, too few to decide.
    assert results["train_s"] == 8.0 and results["checks"][0]["verdict"] == "inconclusive"
    assert results["checks"][0]["arms"] == {"a": [1.0, 2.0], "b": [3.0, 4.0]}
    run_study(study, "fast", out=tmp_path / "toy", runs_dir=runs, resume=True)  # the same keys: the same runs
    assert len(calls) == 4
    run_study(study, "fast", seeds=1, out=tmp_path / "toy", runs_dir=runs, resume=True)
    assert len(list((tmp_path / "toy" / "runs").iterdir())) == 2  # the seed-1 runs it no longer uses are gone
    first = train_arm(study, study.arms[0], "smoke", 0, runs, resume=False)
    assert first.run_dir.name == study_run_name(study, study.arms[0], "smoke", 0)
    assert first.run_dir.name.startswith("toy-") and first.run_dir.name.endswith("-seed0")
    (first.run_dir.parent / f"{first.run_dir.name}.done").unlink()  # as if the study had been killed
    with pytest.raises(CnnlabError, match="unfinished run.*--resume"):
        train_arm(study, study.arms[0], "smoke", 0, runs, resume=False)
    again = train_arm(study, study.arms[0], "smoke", 0, runs, resume=True)  # started over
    assert calls[-1] == ("a", 0) and len(calls) == 5 and again.command == first.command and again.rows == first.rows


@pytest.mark.parametrize("within, verdict", [(0.5, "reproduced"), (None, "inconclusive")])
def test_runs_that_miss_the_convergence_criterion_leave_the_verdicts_undecided(tmp_path: Path, within, verdict
                                                                              ) -> None:
    toy = _toy_study([], spread=0.1)  # b beats a by 2 with little spread: decided on 3 seeds
    # One row a run: a criterion over one evaluation is met, one over two cannot be.
    rule = Convergence("score", 1, within) if within else Convergence("score", 2, 0.5)
    study = replace(toy, modes={**toy.modes, "standard": Mode(seeds=3, converge=rule)})
    results = json.loads((run_study(study, "standard", out=tmp_path / "toy", runs_dir=tmp_path / "runs")
                          / "results.json").read_text())
    assert results["checks"][0]["verdict"] == verdict
    assert results["convergence"]["rule"] == str(rule)
    report = (tmp_path / "toy" / "report.md").read_text()
    if within:
        assert results["convergence"]["not_converged"] == [] and "met by every run" in report
    else:
        assert len(results["convergence"]["not_converged"]) == 6 and "did not converge" in results["checks"][0]["reason"]
        assert "not met by 6 run(s)" in report


def test_a_study_without_a_mode_says_so(tmp_path: Path) -> None:
    toy = _toy_study([])
    study = replace(toy, modes={m: mode for m, mode in toy.modes.items() if m != "standard"})
    with pytest.raises(CnnlabError, match="toy has no standard mode yet: use one of smoke, fast, paper"):
        run_study(study, "standard", out=tmp_path / "x", runs_dir=tmp_path / "runs")


HOLDER = """
import sys, time
from pathlib import Path
from cnnlab.studies.framework import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(1)
    Path(sys.argv[2]).touch()  # the run "finished", still under the lock
"""


def test_a_second_process_that_needs_a_run_being_trained_waits_for_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "resnet20-abc-seed0"
    finished = tmp_path / "finished"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), str(finished)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        told = io.StringIO()
        with run_lock(run_dir, told):
            assert finished.is_file()  # the lock came only when the first process was done with the run
        assert told.getvalue() == (f"{run_dir.name} is being trained by another process (pid {holder.pid}): "
                                   "waiting for it\n")
    finally:
        holder.kill()
        holder.wait()


def test_the_run_bank_is_outside_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CNNLAB_RUNS", raising=False)
    assert runs_root() == Path("~/.cache/cnnlab/runs").expanduser()
    monkeypatch.setenv("CNNLAB_RUNS", str(tmp_path))
    assert runs_root() == tmp_path


def test_study_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["study", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in STUDIES)
    assert main(["study", "run", "kernel-stak"]) == 2
    assert "unknown study 'kernel-stak' (did you mean kernel-stacks" in capsys.readouterr().err
    out = tmp_path / "ks"
    assert main(["study", "run", "kernel-stacks", "--out", str(out)]) == 0
    assert main(["study", "run", "kernel-stacks", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["study", "run", "kernel-stacks", "--out", str(out), "--resume"]) == 0
    assert main(["study", "run", "kernel-stacks", "--out", str(out), "--seeds", "0"]) == 2
    assert main(["study", "report", "--dir", str(tmp_path)]) == 0 and (tmp_path / "README.md").is_file()
    assert main(["study", "report", "--dir", str(tmp_path / "none")]) == 2
    assert main(["study", "report", "kernel-stacks", "--dir", str(tmp_path / "none")]) == 2
    assert "holds no results.json" in capsys.readouterr().err


# ----- the study folder: re-analysis without training, the committed reference -----

def test_a_committed_trained_study_re_analyses_to_its_committed_verdicts(tmp_path: Path) -> None:
    committed = Path(__file__).resolve().parents[1] / "studies" / "lrn"
    folder = tmp_path / "lrn"
    shutil.copytree(committed, folder)
    before = json.loads((folder / "results.json").read_text())
    report_study(get_study("lrn"), folder)  # from the kept numbers and runs alone: no training, no checkpoint
    after = json.loads((folder / "results.json").read_text())
    assert after["checks"] == before["checks"] and after["numbers"] == before["numbers"]
    assert (folder / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_from_an_earlier_design_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "lrn"
    shutil.copytree(Path(__file__).resolve().parents[1] / "studies" / "lrn", folder)
    results = json.loads((folder / "results.json").read_text())
    del results["numbers"]["test_top1_err"]  # as if the study now measured something the folder lacks
    (folder / "results.json").write_text(json.dumps(results))
    with pytest.raises(CnnlabError, match="earlier design of lrn \\(no 'test_top1_err'\\): run `cnnlab study run lrn`"):
        report_study(get_study("lrn"), folder)


def test_a_users_run_goes_to_a_runs_folder_and_shows_the_committed_verdicts(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "studies").mkdir()
    shutil.copytree(repo / "studies" / "kernel-stacks", tmp_path / "studies" / "kernel-stacks")
    monkeypatch.chdir(tmp_path)  # a fresh clone: the committed reference under studies/
    out = run_study(get_study("kernel-stacks"), "fast")
    assert out == Path("runs") / "study-results" / "kernel-stacks"
    report = (out / "report.md").read_text()
    assert "committed verdict" in report and "beside the committed reference" in report
    assert (tmp_path / "studies" / "kernel-stacks" / "results.json").read_bytes() == (
        repo / "studies" / "kernel-stacks" / "results.json").read_bytes()  # the reference is untouched


def test_relu_vs_tanh_fits_without_regularisation_as_figure_1() -> None:
    study = get_study("relu-vs-tanh")
    for mode in MODES:
        configs = [arm_config(study, arm, mode, 0) for arm in study.arms_of(mode)]
        assert all(c.optimizer["weight_decay"] == 0.0 and not c.augment and c.schedule == {"name": "constant"}
                   for c in configs)
        if mode != "standard":  # one shared rate; standard sweeps each activation's (test_studies_relu_vs_tanh.py)
            assert len({c.optimizer["lr"] for c in configs}) == 1
            assert [c.model_kwargs["activation"] for c in configs] == ["relu", "tanh"]

