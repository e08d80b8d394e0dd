"""``cnnlab study list | run | report``: the case studies' claims, one command each."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.studies.framework import MODES


def _minutes(minutes: float) -> str:
    return "<1 min" if minutes < 1 else f"{minutes:.0f} min"


def _list(args: argparse.Namespace) -> int:
    from cnnlab.studies import all_studies

    for study in all_studies().values():
        kind = f"trains {len(study.arms)} arms" if study.trained else "analytic"
        times = ", ".join(f"{mode} {_minutes(study.modes[mode].minutes)}" for mode in MODES if mode in study.modes)
        print(f"{study.name:<22} {study.title}\n{'':<22} {study.source}; {kind}; {times}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from cnnlab.studies import get_study
    from cnnlab.studies.runner import run_study

    out = run_study(get_study(args.name), args.mode, seeds=args.seeds, out=args.out, runs_dir=args.runs,
                    resume=args.resume)
    print((out / "report.md").read_text())
    print(f"written: {out / 'results.json'}, {out / 'figure.png'}, {out / 'report.md'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from cnnlab.studies import get_study
    from cnnlab.studies.report import write_summary
    from cnnlab.studies.runner import report_study

    for name in args.names:
        out = report_study(get_study(name), Path(args.dir) / name)
        print(f"written: {out / 'results.json'}, {out / 'figure.png'}, {out / 'report.md'}")
    print(f"written: {write_summary(args.dir)}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``study`` and its sub-commands to the ``cnnlab`` parser."""
    study = subparsers.add_parser("study", help="reproduce a case study's claim: list, run, report")
    sub = study.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="every study: its claim, source and time per mode")
    p.set_defaults(func=_list)

    p = sub.add_parser("run", help="run one study; writes results.json, figure.png and report.md")
    p.add_argument("name", help="a study's name (see `cnnlab study list`)")
    p.add_argument("--mode", default="fast", choices=MODES,
                   help="smoke: seconds, for tests; fast (default): minutes on a CPU; standard: the design that decides "
                        "the claim on 2 CPU cores (hours; studies that have one); paper: the paper's scale")
    p.add_argument("--seeds", type=int, help="runs per arm (the mode's by default)")
    p.add_argument("--out", help="the study's folder (default: runs/study-results/NAME; the committed reference "
                                 "is studies/NAME)")
    p.add_argument("--runs", help="the run bank: where the training runs go, shared by all studies and checkouts "
                                  "(default: $CNNLAB_RUNS, else ~/.cache/cnnlab/runs)")
    p.add_argument("--resume", action="store_true",
                   help="continue unfinished runs and rewrite the study's results in --out")
    p.set_defaults(func=_run)

    p = sub.add_parser("report", help="re-analyse study folders without training, and gather every study's "
                                      "verdicts on one page")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="studies whose folders to re-analyse from their numbers and kept runs (none: only the page)")
    p.add_argument("--dir", default="studies", help="the folder of study folders (default: studies)")
    p.set_defaults(func=_report)
