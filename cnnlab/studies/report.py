"""A study's figure and report, and the one page that gathers every study's verdicts."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.studies.framework import Analysis, Study


def write_figure(analysis: Analysis, path: Path) -> None:
    """Draws the study's figure into ``path`` (PNG, small enough to commit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.5))
    try:
        analysis.draw(fig)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    finally:
        plt.close(fig)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_table(checks: Iterable[dict[str, str]]) -> list[str]:
    lines = ["| claim | paper | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['measured'])} | **{c['verdict']}** |"
              for c in checks]
    return lines


def _duration(results: dict[str, Any]) -> str:
    """A study's cost: its runs' summed training time or its own wall time, whichever is longer
    (runs reused from other studies make the wall time short; long evaluations make it long)."""
    seconds = max(results.get("train_s") or 0.0, results["elapsed_s"])
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _machine_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    units = ", ".join(name for name, key in (("AVX-512", "avx512"), ("AVX512-BF16", "avx512_bf16"), ("AMX", "amx"))
                      if m.get(key)) or "no AVX-512"
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{m['cpu']} ({units}), {m['cores']} cores{gpu}; torch {m['torch']}; "
            f"load average {m['loadavg_before']:.2f} before, {m['loadavg_after']:.2f} after")


def write_report(study: Study, results: dict[str, Any], notes: list[str], path: Path) -> None:
    """``report.md``: the claim, the verdict table, the figure, and how it was measured."""
    mode = study.modes[results["mode"]]
    lines = [f"# {study.name}: {study.title}", "", f"> {study.quote}", ">", f"> {study.source}", ""]
    if results["mode"] == "smoke":
        lines += ["**Smoke mode: a test of the machinery. These numbers are not results.**", ""]
    lines += [*verdict_table(results["checks"]), "", "![figure](figure.png)", "", "## How it was run", "",
              f"- command: `{results['command']}`, finished {results['finished']}: "
              + (f"{results['train_s'] / 60:.1f} minutes of training (the runs' own time, summed; a run another "
                 f"study or an earlier invocation finished is reused), {results['elapsed_s'] / 60:.1f} minutes "
                 "for this invocation" if study.trained else f"{results['elapsed_s']:.1f} s"),
              f"- machine: {_machine_line(results)}",
              f"- mode: {results['mode']}" + (f" ({mode.note})" if mode.note else "")]
    if study.trained:
        start = "its own trainer's defaults" if study.trainer else study.recipe_of(results["mode"]) or "the task defaults"
        lines += [f"- seeds: {results['seeds']} per arm; starting from: {start}"
                  + (f"; the mode's settings: `{json.dumps(dict(mode.config))}`" if mode.config else ""),
                  "- arms:", ""]
        lines += ["| arm | model | settings |", "|---|---|---|"]
        lines += [f"| {arm.legend} | {arm.model} | `{json.dumps(dict(arm.config))}` |" for arm in study.arms_of(
            results["mode"])]
        lines += ["", "Each run's own command (`cnnlab train` or the study's own trainer's) is in `results.json`."]
    lines += ["", "## Verdict rule", "", study.verdict_rule]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def overview_table(paths: list[Path], summaries: list[dict[str, Any]]) -> list[str]:
    """One row a study: its claim and how many of its checks got each verdict."""
    lines = ["| study | claim | verdicts | mode, time |", "|---|---|---|---|"]
    for path, s in zip(paths, summaries):
        counts = collections.Counter(c["verdict"] for c in s["checks"])
        verdicts = ", ".join(f"{n} {verdict}" for verdict, n in counts.most_common())
        lines.append(f"| [{s['study']}]({path.parent.name}/report.md) | {_cell(s['title'])} | {verdicts} | "
                     f"{s['mode']}, {_duration(s)} |")
    return lines


def write_summary(directory: str | Path) -> Path:
    """``DIR/README.md``: every study's verdict table and figure, from each ``DIR/*/results.json``."""
    root = Path(directory)
    found = sorted(root.glob("*/results.json"))
    if not found:
        raise CnnlabError(f"no study results in {root}: run `cnnlab study run NAME --out {root}/NAME` first")
    summaries = [json.loads(p.read_text()) for p in found]
    lines = ["# The case studies: verdicts", "",
             "Every claim checked by `cnnlab study run`; rebuilt by `cnnlab study report "
             f"{root}` from each study's `results.json`.", "", *overview_table(found, summaries), "",
             "| study | source | claim | paper | measured | verdict | mode, time |", "|---|---|---|---|---|---|---|"]
    for path, s in zip(found, summaries):
        first = (f"[{s['study']}]({path.parent.name}/report.md)", _cell(s["source"]), f"{s['mode']}, {_duration(s)}")
        for i, c in enumerate(s["checks"]):
            study, source, cost = first if i == 0 else ("", "", "")  # the study's columns once, on its first row
            lines.append(f"| {study} | {source} | {_cell(c['claim'])} | {_cell(c['paper'])} | "
                         f"{_cell(c['measured'])} | **{c['verdict']}** | {cost} |")
    for path, s in zip(found, summaries):
        lines += ["", f"## {s['study']}: {s['title']}", "", f"{s['source']}. Machine: {_machine_line(s)}.", "",
                  f"![{s['study']}]({path.parent.name}/figure.png)"]
    out = root / "README.md"
    atomic_write(out, ("\n".join(lines) + "\n").encode())
    return out
