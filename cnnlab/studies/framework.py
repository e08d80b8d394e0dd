"""The case-study framework: a study is a short declarative definition, the framework runs it.

A :class:`Study` names the claim (quoted briefly, with its source), the arms to
compare (a model and its config keys), each mode's scale as data (:class:`Mode`:
seeds, config keys, expected minutes) and three functions: ``measure`` turns the finished
runs into numbers (JSON: what ``results.json`` keeps), ``judge`` turns those numbers into
verdicts (:mod:`cnnlab.studies.verdicts`) and notes, ``draw`` draws the figure from the
runs' rows and the numbers. Since the verdicts need only the numbers and the figure only
the runs' ``metrics.csv``, a study folder re-analyses without training
(:mod:`cnnlab.studies.runner`). A study of something the Trainer does not train
(word2vec) names its own ``trainer`` instead, and the framework treats its runs the same
way.

Runs are shared: a run's directory is named by its model, a digest of its resolved
config and its seed, so two studies (or two modes) that need the same run train it
once. A finished run is reused; an unfinished one (a killed study) is continued with
``--resume`` (a study's own trainer starts it over). Two processes that need the same run
at once do not both train it: a lock beside the run directory makes the second wait for the
first, and then reuse its run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock, Timeout

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write, atomic_write_csv, read_metrics
from cnnlab.studies.verdicts import RULE, Check

MODES = ("smoke", "fast", "standard", "paper")
# Config keys that say where a run's data and compute are, not what the run is.
_NOT_IDENTITY = ("data_dir", "device", "seed")


@dataclass(frozen=True)
class Convergence:
    """When a run counts as converged: its schedule ran to the end (a finished run), and
    ``metric`` moved by at most ``within`` over its last ``evaluations`` evaluations."""

    metric: str
    evaluations: int
    within: float

    def __str__(self) -> str:
        return (f"the schedule ran to its end and {self.metric} moved by at most {100 * self.within:g} points over "
                f"the last {self.evaluations} evaluations")

    def met_by(self, run: Run) -> bool:
        values = run.series(self.metric)[1][-self.evaluations:]
        return len(values) == self.evaluations and max(values) - min(values) <= self.within


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
        converge: the convergence criterion the mode's runs must meet (standard mode), or
            None; runs that miss it are named in the report and leave the trained verdicts
            undecided.
    """

    seeds: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)
    minutes: float = 0.0
    arms: tuple[str, ...] = ()
    note: str = ""
    recipe: str | None = None
    converge: Convergence | None = None


# Analytic studies compute exact numbers: every mode is the same, and quick.
ANALYTIC_MODES = {mode: Mode(minutes=0.2, note="exact (no training): every mode is the same") for mode in MODES}
# The modes a trained study must define; ``standard`` (the design that decides the claim at
# scaled fidelity on 2 CPU cores) is being added study by study.
REQUIRED_MODES = ("smoke", "fast", "paper")
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


@dataclass
class Findings:
    """What a study's ``judge`` concludes from its numbers: the verdict rows and the notes."""

    checks: list[Check]
    notes: list[str] = field(default_factory=list)


Runs = dict[str, list[Run]]


@dataclass(frozen=True)
class Study:
    """A case study: the claim, the arms, the modes, and the analysis.

    Attributes:
        name: the command-line name, e.g. ``plain-vs-residual``.
        title: the claim in one line, for ``cnnlab study list``.
        source: the paper and where in it (section, table, figure).
        quote: the claim in the paper's words, briefly.
        measure: ``measure(runs, mode)`` -> the study's numbers (JSON-serialisable): ``runs``
            maps each arm's name to its runs, one per seed (empty for an analytic study).
        judge: ``judge(numbers, mode)`` -> :class:`Findings`, from the numbers alone.
        draw: ``draw(fig, runs, numbers)`` fills an empty matplotlib figure (axes with labels,
            a legend, a title naming the paper's figure or table).
        arms: the configurations to train; none for an analytic study.
        recipe: the recipe every arm starts from (a shipped name or a path).
        modes: ``smoke``, ``fast`` and ``paper``, and ``standard`` where the study has one.
        rule: what the study adds to the common rule (:data:`cnnlab.studies.verdicts.RULE`): its
            margins, ceilings, proxies; stated in the report.
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
    measure: Callable[[Runs, str], dict[str, Any]]
    judge: Callable[[Mapping[str, Any], str], Findings]
    draw: Callable[[Any, Runs, Mapping[str, Any]], None]
    arms: tuple[Arm, ...] = ()
    recipe: str | None = None
    modes: Mapping[str, Mode] = field(default_factory=lambda: dict(ANALYTIC_MODES))
    rule: str = ""
    trainer: Callable[[Arm, Mapping[str, Any], int, Path], str] | None = None

    def __post_init__(self) -> None:
        missing = [m for m in REQUIRED_MODES if m not in self.modes]
        if missing:
            raise CnnlabError(f"study {self.name} defines no {', '.join(missing)} mode")
        names = {arm.name for arm in self.arms}
        for mode_name, mode in self.modes.items():
            unknown = sorted(set(mode.arms) - names)
            if unknown:
                raise CnnlabError(f"study {self.name}, mode {mode_name}: unknown arm(s) {', '.join(unknown)}")

    def mode(self, name: str) -> Mode:
        """The mode called ``name``.

        Raises:
            CnnlabError: the study has no such mode.
        """
        if name not in self.modes:
            raise CnnlabError(f"study {self.name} has no {name} mode yet: use one of {', '.join(self.modes)}")
        return self.modes[name]

    def recipe_of(self, mode: str) -> str | None:
        return self.mode(mode).recipe or self.recipe

    @property
    def trained(self) -> bool:
        return bool(self.arms)

    @property
    def verdict_rule(self) -> str:
        return f"{RULE} {self.rule}" if self.rule else RULE

    def arms_of(self, mode: str) -> tuple[Arm, ...]:
        chosen = self.mode(mode).arms
        return tuple(a for a in self.arms if not chosen or a.name in chosen)


# ----- running -----


def arm_keys(study: Study, arm: Arm, mode: str) -> dict[str, Any]:
    """The config keys of one arm in one mode: the mode's, then the arm's (the arm wins: it is
    what the study varies)."""
    return {**study.mode(mode).config, **arm.config}


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


def write_rows(run_dir: Path, rows: Sequence[Mapping[str, float]]) -> None:
    """A study's own trainer's ``metrics.csv``, as the Trainer writes it: a header, one row per
    epoch (numbers), written atomically."""
    atomic_write_csv(run_dir / "metrics.csv", list(dict.fromkeys(key for row in rows for key in row)), rows)


@contextlib.contextmanager
def run_lock(run_dir: Path, stream: TextIO | None = None) -> Iterator[None]:
    """Holds the lock of one run directory: a second process that needs the same run waits
    here, told which process trains it, until the first has finished (or died)."""
    lock = FileLock(run_dir.with_name(run_dir.name + ".lock"))
    owner = run_dir.with_name(run_dir.name + ".owner")  # the holder's pid, for the waiting one's message
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = owner.read_text().strip() if owner.is_file() else "unknown"
        print(f"{run_dir.name} is being trained by another process (pid {holder}): waiting for it",
              file=stream, flush=True)
        lock.acquire()
    try:
        owner.write_text(f"{os.getpid()}\n")
        yield
    finally:
        lock.release()


def _train_own(study: Study, arm: Arm, mode: str, seed: int, runs_dir: Path, *, resume: bool) -> Run:
    """:func:`train_arm` with the study's own trainer; the run's command is the one its trainer
    returned, kept in the ``.done`` marker."""
    run_dir = runs_dir / study_run_name(study, arm, mode, seed)
    done = run_dir.with_name(run_dir.name + ".done")
    runs_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        if not done.is_file():
            if run_dir.is_dir() and any(run_dir.iterdir()) and not resume:
                raise CnnlabError(f"{run_dir} holds an unfinished run of this study: pass --resume to start it over")
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(done, f"{study.trainer(arm, arm_keys(study, arm, mode), seed, run_dir)}\n".encode())
    return Run(arm.name, seed, run_dir, done.read_text().strip(), read_metrics(run_dir / "metrics.csv"))


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
    runs_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir, stream):
        if not done.is_file():
            started = any((run_dir / "checkpoints").glob("*.json"))
            if started and not resume:
                raise CnnlabError(f"{run_dir} holds an unfinished run of this study: pass --resume to continue it")
            train(config, run_dir, resume=started, stream=stream)
            atomic_write(done, f"{command}\n".encode())
    return Run(arm.name, seed, run_dir, command, read_metrics(run_dir / "metrics.csv"))
