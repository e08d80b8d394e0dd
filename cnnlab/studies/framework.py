"""The case-study framework: a study is a short declarative definition, the framework runs it.

A :class:`Study` names the claim (quoted briefly, with its source), the arms to
compare (a model and its config keys), each mode's scale as data (:class:`Mode`:
seeds, config keys, expected minutes) and one ``analyse`` function that turns the
finished runs into numbers, verdicts (:mod:`cnnlab.studies.verdicts`) and a figure.
:func:`run_study` trains every arm and seed through the normal trainer, each in its own
run directory, and writes ``results.json``, ``figure.png`` and ``report.md``. A study of
something the Trainer does not train (word2vec) names its own ``trainer`` instead, and
the framework treats its runs the same way.

Runs are shared: a run's directory is named by its model, a digest of its resolved
config and its seed, so two studies (or two modes) that need the same run train it
once. A finished run is reused; an unfinished one (a killed study) is continued with
``--resume`` (a study's own trainer starts it over).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write, atomic_write_csv
from cnnlab.studies.verdicts import DIFFERENCE_RULE, VALUE_RULE, VERDICTS

MODES = ("smoke", "fast", "paper")
# Config keys that say where a run's data and compute are, not what the run is.
_NOT_IDENTITY = ("data_dir", "device", "seed")


@dataclass(frozen=True)
class Mode:
    """One scale of a study.

    Attributes:
        seeds: runs per arm (a command line's ``--seeds`` overrides it).
        config: config keys (dotted: ``optimizer.lr``) applied to every arm, e.g. the
            schedule's length.
        minutes: the expected wall time on 2 idle CPU cores (``cnnlab study list``).
        arms: the arms this mode runs (all when empty).
        note: what this mode reduces against the paper, for the report.
        recipe: the recipe this mode starts from, instead of the study's (the paper's own
            schedule in paper mode, say).
    """

    seeds: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)
    minutes: float = 0.0
    arms: tuple[str, ...] = ()
    note: str = ""
    recipe: str | None = None


# Analytic studies compute exact numbers: every mode is the same, and quick.
ANALYTIC_MODES = {mode: Mode(minutes=0.2, note="exact (no training): every mode is the same") for mode in MODES}
# The smoke mode of a trained study: two steps of every arm on scikit-learn's digits
# (shipped with cnnlab, no download) scaled to 32x32, for the tests. Never a result.
SMOKE = Mode(seeds=1, minutes=0.1, note="smoke: two steps on 8x8 digits scaled to 32x32; the numbers mean nothing",
             config={"dataset": "digits", "preprocess": [{"name": "resize", "size": 32}], "epochs": 1,
                     "max_steps": 2, "batch_size": 16, "eval_batch_size": 256, "compile": False,
                     "precision": "fp32", "channels_last": False,
                     "normalize": None})


def with_config(modes: Mapping[str, Mode], **keys: Any) -> dict[str, Mode]:
    """The same modes with more config keys in each: a study's variation on shared modes."""
    return {name: replace(mode, config={**mode.config, **keys}) for name, mode in modes.items()}


@dataclass(frozen=True)
class Arm:
    """One configuration a study compares: a registered model and its config keys (with a
    study's own trainer, ``model`` is the prefix of the run directories' names)."""

    name: str
    model: str
    config: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def legend(self) -> str:
        return self.label or self.name


@dataclass
class Run:
    """A finished training run of one arm and seed: its per-epoch rows (fractions)."""

    arm: str
    seed: int
    run_dir: Path
    command: str
    rows: list[dict[str, float]]

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(epochs, values) of the rows that hold ``key``."""
        points = [(r["epoch"], r[key]) for r in self.rows if key in r]
        return [p[0] for p in points], [p[1] for p in points]

    def last(self, key: str) -> float:
        """The last value of ``key`` (e.g. the final test error)."""
        values = self.series(key)[1]
        if not values:
            raise CnnlabError(f"run {self.run_dir} recorded no {key}")
        return values[-1]

    @property
    def checkpoint(self) -> Path:
        """The run's final checkpoint (``best`` may be an earlier one)."""
        return self.run_dir / "checkpoints" / "last.json"


@dataclass(frozen=True)
class Check:
    """One row of a study's verdict table: a claim, the paper's number, ours, the verdict."""

    claim: str
    paper: str
    measured: str
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise CnnlabError(f"verdict must be one of {', '.join(VERDICTS)}, got {self.verdict!r}")


@dataclass
class Analysis:
    """What a study concludes: its verdicts, every number behind them, and its figure.

    ``draw`` gets an empty matplotlib figure and fills it (axes with labels, a legend,
    a title naming the paper's figure or table).
    """

    checks: list[Check]
    numbers: dict[str, Any]
    draw: Callable[[Any], None]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Study:
    """A case study: the claim, the arms, the modes, and the analysis.

    Attributes:
        name: the command-line name, e.g. ``plain-vs-residual``.
        title: the claim in one line, for ``cnnlab study list``.
        source: the paper and where in it (section, table, figure).
        quote: the claim in the paper's words, briefly.
        analyse: ``analyse(runs, mode)`` -> :class:`Analysis`; ``runs`` maps each arm's
            name to its runs, one per seed (empty for an analytic study).
        arms: the configurations to train; none for an analytic study.
        recipe: the recipe every arm starts from (a shipped name or a path).
        modes: ``smoke``, ``fast`` and ``paper``.
        rule: how the verdicts are computed, stated in the report.
        trainer: trains the arms of a study the Trainer cannot (None: the Trainer, ``cnnlab
            train``). ``trainer(arm, keys, seed, run_dir)`` gets the mode's and the arm's config
            keys (the arm's win), trains into ``run_dir`` (starting over where a killed run left
            files), records one row per epoch with :func:`write_rows` (``epoch``, and the
            cumulative training seconds ``elapsed_s``), and returns the command line that repeats
            the run on its own.
    """

    name: str
    title: str
    source: str
    quote: str
    analyse: Callable[[dict[str, list[Run]], str], Analysis]
    arms: tuple[Arm, ...] = ()
    recipe: str | None = None
    modes: Mapping[str, Mode] = field(default_factory=lambda: dict(ANALYTIC_MODES))
    rule: str = ""
    trainer: Callable[[Arm, Mapping[str, Any], int, Path], str] | None = None

    def __post_init__(self) -> None:
        missing = [m for m in MODES if m not in self.modes]
        if missing:
            raise CnnlabError(f"study {self.name} defines no {', '.join(missing)} mode")
        names = {arm.name for arm in self.arms}
        for mode_name, mode in self.modes.items():
            unknown = sorted(set(mode.arms) - names)
            if unknown:
                raise CnnlabError(f"study {self.name}, mode {mode_name}: unknown arm(s) {', '.join(unknown)}")

    def recipe_of(self, mode: str) -> str | None:
        return self.modes[mode].recipe or self.recipe

    @property
    def trained(self) -> bool:
        return bool(self.arms)

    @property
    def verdict_rule(self) -> str:
        return self.rule or (DIFFERENCE_RULE if self.trained else VALUE_RULE)

    def arms_of(self, mode: str) -> tuple[Arm, ...]:
        chosen = self.modes[mode].arms
        return tuple(a for a in self.arms if not chosen or a.name in chosen)


# ----- running -----


def arm_keys(study: Study, arm: Arm, mode: str) -> dict[str, Any]:
    """The config keys of one arm in one mode: the mode's, then the arm's (the arm wins: it is
    what the study varies)."""
    return {**study.modes[mode].config, **arm.config}


def arm_config(study: Study, arm: Arm, mode: str, seed: int) -> Any:
    """The resolved :class:`TrainConfig` of one arm and seed: the study's recipe, the arm's
    keys (:func:`arm_keys`), the seed."""
    from cnnlab.train.config import resolve_config

    return resolve_config(arm.model, study.recipe_of(mode), flags={**arm_keys(study, arm, mode), "seed": seed})


def _name(model: str, settings: Mapping[str, Any], seed: int) -> str:
    identity = {k: v for k, v in settings.items() if k not in _NOT_IDENTITY}
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{model}-{digest}-seed{seed}"


def run_name(config: Any) -> str:
    """``<model>-<digest of the config>-seed<N>``: equal configs share a run."""
    return _name(config.model, config.to_dict(), config.seed)


def study_run_name(study: Study, arm: Arm, mode: str, seed: int) -> str:
    """The directory name of one arm's run: :func:`run_name` of its resolved config, or with a
    study's own trainer, of its config keys (:func:`arm_keys`)."""
    if study.trainer is None:
        return run_name(arm_config(study, arm, mode, seed))
    return _name(arm.model, arm_keys(study, arm, mode), seed)


def train_command(study: Study, arm: Arm, mode: str, seed: int, run_dir: Path) -> str:
    """The ``cnnlab train`` command line that repeats one run on its own."""
    keys = arm_keys(study, arm, mode)
    words = ["cnnlab", "train", arm.model]
    if study.recipe_of(mode):
        words += ["--recipe", study.recipe_of(mode)]
    for key, value in keys.items():
        words += ["--set", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    words += ["--seed", str(seed), "--out", str(run_dir)]
    return shlex.join(words)


def _read_rows(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def write_rows(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> None:
    """A study's own trainer's ``metrics.csv``, as the Trainer writes it: a header, one row per
    epoch (numbers), written atomically."""
    atomic_write_csv(run_dir / "metrics.csv", list(dict.fromkeys(key for row in rows for key in row)), rows)


def _train_own(study: Study, arm: Arm, mode: str, seed: int, runs_dir: Path, *, resume: bool) -> Run:
    """:func:`train_arm` with the study's own trainer; the run's command is the one its trainer
    returned, kept in the ``.done`` marker."""
    run_dir = runs_dir / study_run_name(study, arm, mode, seed)
    done = run_dir.with_name(run_dir.name + ".done")
    if not done.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
            raise CnnlabError(f"{run_dir} holds an unfinished run of this study: pass --resume to start it over")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(done, f"{study.trainer(arm, arm_keys(study, arm, mode), seed, run_dir)}\n".encode())
    return Run(arm.name, seed, run_dir, done.read_text().strip(), _read_rows(run_dir))


def train_arm(study: Study, arm: Arm, mode: str, seed: int, runs_dir: Path, *, resume: bool,
              stream: TextIO | None = None) -> Run:
    """One arm's run for one seed: reused when finished, continued with ``resume``, else trained."""
    from cnnlab.train.loop import train

    if study.trainer is not None:
        return _train_own(study, arm, mode, seed, runs_dir, resume=resume)
    config = arm_config(study, arm, mode, seed)
    run_dir = runs_dir / run_name(config)
    done = run_dir.with_name(run_dir.name + ".done")  # beside the run: a run directory holds only the trainer's files
    command = train_command(study, arm, mode, seed, run_dir)
    if not done.is_file():
        started = any((run_dir / "checkpoints").glob("*.json"))
        if started and not resume:
            raise CnnlabError(f"{run_dir} holds an unfinished run of this study: pass --resume to continue it")
        train(config, run_dir, resume=started, stream=stream)
        atomic_write(done, f"{command}\n".encode())
    return Run(arm.name, seed, run_dir, command, _read_rows(run_dir))


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, its matrix-unit flags, cores, torch."""
    import torch

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        cpu = fields.get("Model name", cpu).strip()
        flags = set(fields.get("Flags", "").split())
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "avx512": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags,
            "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def run_study(study: Study, mode: str = "fast", *, seeds: int | None = None, out: str | Path | None = None,
              runs_dir: str | Path | None = None, resume: bool = False, stream: TextIO | None = None) -> Path:
    """Runs ``study`` in ``mode`` and writes ``results.json``, ``figure.png`` and ``report.md``
    to ``out`` (default ``studies/<name>``); returns ``out``.

    Raises:
        CnnlabError: an unknown mode, a bad seed count, or an ``out`` that already holds
            results (without ``resume``).
    """
    from cnnlab.studies.report import write_figure, write_report

    if mode not in MODES:
        raise CnnlabError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    seeds = study.modes[mode].seeds if seeds is None else seeds
    if seeds < 1:
        raise CnnlabError(f"--seeds must be a positive integer, got {seeds}")
    out = Path(out) if out else Path("studies") / study.name
    runs_dir = Path(runs_dir) if runs_dir else Path("runs") / "studies"
    if (out / "results.json").exists() and not resume:
        raise CnnlabError(f"{out} already holds this study's results: pass --resume to reuse its runs "
                          "and rewrite them, or choose another --out")
    stream = stream or sys.stderr
    load_before, start = os.getloadavg()[0], time.perf_counter()
    runs: dict[str, list[Run]] = {}
    arms = study.arms_of(mode)
    for i, arm in enumerate(arms):
        for seed in range(seeds):
            print(f"[{study.name}] arm {arm.name}, seed {seed} ({i * seeds + seed + 1}/{len(arms) * seeds})",
                  file=stream, flush=True)
            runs.setdefault(arm.name, []).append(train_arm(study, arm, mode, seed, runs_dir, resume=resume,
                                                           stream=stream))
    analysis = study.analyse(runs, mode)
    elapsed = time.perf_counter() - start
    command = shlex.join(["cnnlab", "study", "run", study.name, "--mode", mode, "--seeds", str(seeds)])
    results = {
        "study": study.name, "title": study.title, "source": study.source, "mode": mode, "seeds": seeds,
        "command": command, "elapsed_s": round(elapsed, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        # The runs' own training time, summed: what the study costs, even when its runs were reused.
        "train_s": round(sum(r.rows[-1].get("elapsed_s", 0.0) for arm_runs in runs.values() for r in arm_runs if r.rows), 1),
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]},
        "checks": [vars(c) for c in analysis.checks], "numbers": analysis.numbers,
        "runs": [{"arm": r.arm, "seed": r.seed, "run_dir": str(r.run_dir), "command": r.command,
                  "final": r.rows[-1] if r.rows else {}} for arm_runs in runs.values() for r in arm_runs],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", (json.dumps(results, indent=1) + "\n").encode())
    write_figure(analysis, out / "figure.png")
    write_report(study, results, analysis.notes, out / "report.md")
    return out
