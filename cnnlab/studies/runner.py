"""Running a study and re-analysing a study folder.

A study folder holds ``results.json`` (the numbers, the verdicts and how they were
measured), ``report.md``, ``figure.png`` and ``runs/<run>/``: each run's ``metrics.csv``
and resolved config, small text files. :func:`run_study` trains (or reuses) the runs and
writes the folder; :func:`report_study` rebuilds the verdicts, report and figure from the
folder alone, without training or the runs' checkpoints.

The committed folders under ``studies/`` are the reference; a user's run goes to
:data:`USER_RESULTS` by default, and its report shows the committed verdicts beside its own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write, read_metrics
from cnnlab.hardware import machine
from cnnlab.studies.framework import MODES, Run, Runs, Study, train_arm
from cnnlab.studies.report import write_figure, write_report
from cnnlab.studies.verdicts import DECIDED, INCONCLUSIVE, TRAINED, Check

REFERENCE = Path("studies")  # the committed results, one folder a study
USER_RESULTS = Path("runs") / "study-results"  # where a user's study run writes by default


def runs_root() -> Path:
    """The run bank, where studies' training runs live, shared by every study and every
    checkout: ``$CNNLAB_RUNS``, else ``~/.cache/cnnlab/runs`` (outside any checkout, so a fresh
    clone reuses the runs an older one trained)."""
    return Path(os.environ.get("CNNLAB_RUNS") or Path("~/.cache/cnnlab/runs")).expanduser()


def _keep(run: Run, folder: Path) -> str:
    """Copies a run's metrics and config into ``folder/runs/<run>/``; returns the run's name."""
    kept = folder / "runs" / run.run_dir.name
    kept.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.csv", "config.yaml"):
        if (run.run_dir / name).is_file():
            shutil.copyfile(run.run_dir / name, kept / name)
    return run.run_dir.name


def _kept_runs(folder: Path, records: list[dict[str, Any]]) -> Runs:
    """The runs a study folder keeps, as :class:`Run` objects (rows from their ``metrics.csv``)."""
    runs: Runs = {}
    for record in records:
        run_dir = folder / "runs" / record["run"]
        if not (run_dir / "metrics.csv").is_file():
            raise CnnlabError(f"{run_dir} holds no metrics.csv: run the study again to rebuild its folder")
        runs.setdefault(record["arm"], []).append(
            Run(record["arm"], record["seed"], run_dir, record["command"], read_metrics(run_dir / "metrics.csv")))
    return runs


def _reference(study: Study, out: Path) -> dict[str, Any] | None:
    """The committed results of ``study``, when ``out`` is another folder."""
    committed = REFERENCE / study.name / "results.json"
    if not committed.is_file() or committed.resolve() == (out / "results.json").resolve():
        return None
    return json.loads(committed.read_text())


def _convergence(study: Study, mode: str, runs: Runs) -> dict[str, Any] | None:
    """The mode's convergence criterion and the runs that missed it (None: the mode states none)."""
    rule = study.mode(mode).converge
    if rule is None:
        return None
    return {"rule": str(rule),
            "not_converged": [r.run_dir.name for arm_runs in runs.values() for r in arm_runs if not rule.met_by(r)]}


def _unconverged(checks: list[Check], convergence: dict[str, Any] | None) -> list[Check]:
    """The trained checks left undecided where runs missed the mode's convergence criterion: a
    verdict on runs still moving would be about where they stopped, not about the claim."""
    missed = (convergence or {}).get("not_converged")
    if not missed:
        return checks
    reason = f"{len(missed)} run(s) did not converge ({convergence['rule']})"
    return [replace(c, verdict=INCONCLUSIVE, reason=reason) if c.kind == TRAINED and c.verdict in DECIDED else c
            for c in checks]


def _write(study: Study, results: dict[str, Any], runs: Runs, out: Path) -> Path:
    """Judges ``results['numbers']``, then writes ``results.json``, the figure and the report."""
    findings = study.judge(results["numbers"], results["mode"])
    checks = _unconverged(findings.checks, results.get("convergence"))
    results = {**results, "checks": [c.to_dict() for c in checks], "notes": findings.notes}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", (json.dumps(results, indent=1) + "\n").encode())
    write_figure(lambda fig: study.draw(fig, runs, results["numbers"]), out / "figure.png")
    write_report(study, results, out / "report.md", reference=_reference(study, out))
    return out


def run_study(study: Study, mode: str = "fast", *, seeds: int | None = None, out: str | Path | None = None,
              runs_dir: str | Path | None = None, resume: bool = False, stream: TextIO | None = None) -> Path:
    """Runs ``study`` in ``mode`` and writes its folder to ``out`` (default
    ``runs/study-results/<name>``); returns ``out``.

    Raises:
        CnnlabError: an unknown mode, a bad seed count, or an ``out`` that already holds
            results (without ``resume``).
    """
    if mode not in MODES:
        raise CnnlabError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    seeds = study.mode(mode).seeds if seeds is None else seeds
    if seeds < 1:
        raise CnnlabError(f"--seeds must be a positive integer, got {seeds}")
    out = Path(out) if out else USER_RESULTS / study.name
    runs_dir = Path(runs_dir) if runs_dir else runs_root()
    if (out / "results.json").exists() and not resume:
        raise CnnlabError(f"{out} already holds this study's results: pass --resume to reuse its runs "
                          "and rewrite them, or choose another --out")
    stream = stream or sys.stderr
    load_before, start = os.getloadavg()[0], time.perf_counter()
    runs: Runs = {}
    arms = study.arms_of(mode)
    for seed in range(seeds):  # seed by seed, arms interleaved: a change in the machine's load hits every arm
        for i, arm in enumerate(arms):
            print(f"[{study.name}] arm {arm.name}, seed {seed} ({seed * len(arms) + i + 1}/{len(arms) * seeds})",
                  file=stream, flush=True)
            runs.setdefault(arm.name, []).append(train_arm(study, arm, mode, seed, runs_dir, resume=resume,
                                                           stream=stream))
    runs = {arm.name: runs[arm.name] for arm in arms if arm.name in runs}
    numbers = study.measure(runs, mode)
    elapsed = time.perf_counter() - start
    results = {
        "study": study.name, "title": study.title, "source": study.source, "mode": mode, "seeds": seeds,
        "command": shlex.join(["cnnlab", "study", "run", study.name, "--mode", mode, "--seeds", str(seeds)]),
        "elapsed_s": round(elapsed, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        # The runs' own training time, summed: what the study costs, even when its runs were reused.
        "train_s": round(sum(r.rows[-1].get("elapsed_s", 0.0) for arm_runs in runs.values() for r in arm_runs
                             if r.rows), 1),
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]},
        "numbers": numbers,
        "convergence": _convergence(study, mode, runs),
        "runs": [{"arm": r.arm, "seed": r.seed, "run": _keep(r, out), "command": r.command,
                  "final": r.rows[-1] if r.rows else {}} for arm_runs in runs.values() for r in arm_runs],
    }
    _drop_other_runs(out, results["runs"])
    return _write(study, results, _kept_runs(out, results["runs"]), out)


def _drop_other_runs(folder: Path, records: list[dict[str, Any]]) -> None:
    """Removes the kept runs of an earlier invocation (another mode, seed count or design) that
    these results do not use, so the folder re-analyses to exactly what it reports."""
    used = {record["run"] for record in records}
    for kept in (folder / "runs").glob("*"):  # an analytic study keeps none
        if kept.name not in used:
            shutil.rmtree(kept)


def report_study(study: Study, folder: str | Path | None = None) -> Path:
    """Rebuilds ``results.json``'s verdicts, ``report.md`` and ``figure.png`` of a study folder
    (default ``studies/<name>``) from its numbers and kept runs, without training.

    Raises:
        CnnlabError: the folder holds no results of this study.
    """
    folder = Path(folder) if folder else REFERENCE / study.name
    if not (folder / "results.json").is_file():
        raise CnnlabError(f"{folder} holds no results.json: run `cnnlab study run {study.name}` first")
    results = json.loads((folder / "results.json").read_text())
    if results.get("study") != study.name:
        raise CnnlabError(f"{folder} holds the results of {results.get('study')!r}, not {study.name!r}")
    try:
        return _write(study, results, _kept_runs(folder, results["runs"]), folder)
    except KeyError as missing:  # the folder's numbers were measured by an earlier design of the study
        raise CnnlabError(f"{folder} holds numbers from an earlier design of {study.name} (no {missing}): run "
                          f"`cnnlab study run {study.name}` again to measure what it checks now") from None
