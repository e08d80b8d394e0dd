"""A study's figure and report, and the one page that gathers every study's verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write
from cnnlab.studies.framework import Study
from cnnlab.studies.verdicts import (ANALYTIC, DECIDED, IDENTITY, INCONSISTENT, REPRODUCED, TRAINED,
                                     UNTESTABLE)


def write_figure(draw: Callable[[Any], None], path: Path) -> None:
    """Draws a study's figure (``draw`` fills an empty matplotlib figure) into ``path`` (PNG,
    small enough to commit)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.5))
    try:
        draw(fig)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    finally:
        plt.close(fig)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def verdict_label(check: Mapping[str, Any]) -> str:
    """A row's verdict as the tables show it: an identity row says it is one (never counted)."""
    if check.get("kind") == IDENTITY:
        return f"identity: {'holds' if check['verdict'] == REPRODUCED else 'fails'}"
    return f"**{check['verdict']}**"


def _why(check: Mapping[str, Any]) -> str:
    basis = f"{check.get('kind', '')}, {check.get('fidelity', '')}"
    return f"{basis}: {check['reason']}" if check.get("reason") else basis


def verdict_table(checks: Iterable[Mapping[str, Any]], reference: Mapping[str, Any] | None = None) -> list[str]:
    """The verdict rows; with ``reference`` (committed results of the same study), its verdict
    of the same claim beside each row."""
    committed = {c["claim"]: c for c in (reference or {}).get("checks", [])}
    extra = " committed verdict |" if reference else ""
    lines = [f"| claim | paper | measured | verdict | why |{extra}", "|---|---|---|---|---|" + ("---|" if extra else "")]
    for c in checks:
        row = f"| {_cell(c['claim'])} | {_cell(c['paper'])} | {_cell(c['measured'])} | {verdict_label(c)} | {_cell(_why(c))} |"
        if reference:
            row += f" {verdict_label(committed[c['claim']]) if c['claim'] in committed else 'n/a'} |"
        lines.append(row)
    return lines


def tally(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What a study decided: trained claims decided (by fidelity), trained inconclusive, analytic
    decided, untestable, paper inconsistent, identities (shown, never counted)."""
    counts = {"trained decided": 0, "trained inconclusive": 0, "analytic decided": 0, "untestable here": 0,
              "paper inconsistent": 0, "identity": 0}
    for c in checks:
        kind, verdict = c.get("kind"), c["verdict"]
        if kind == IDENTITY:
            counts["identity"] += 1
        elif verdict == UNTESTABLE:
            counts["untestable here"] += 1
        elif verdict == INCONSISTENT:
            counts["paper inconsistent"] += 1
        elif kind == TRAINED:
            key = "trained decided" if verdict in DECIDED else "trained inconclusive"
            counts[key] += 1
            if verdict in DECIDED:
                counts[f"trained decided, {c['fidelity']}"] = counts.get(f"trained decided, {c['fidelity']}", 0) + 1
        elif kind == ANALYTIC and verdict in DECIDED:
            counts["analytic decided"] += 1
    return counts


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


def write_report(study: Study, results: Mapping[str, Any], path: Path, *,
                 reference: Mapping[str, Any] | None = None) -> None:
    """``report.md``: the claim, the verdict table (with ``reference``, the committed verdicts
    beside), the figure, and how it was measured."""
    mode = study.mode(results["mode"])
    lines = [f"# {study.name}: {study.title}", "", f"> {study.quote}", ">", f"> {study.source}", ""]
    if results["mode"] == "smoke":
        lines += ["**Smoke mode: a test of the machinery. These numbers are not results.**", ""]
    if reference:
        lines += [f"Your run beside the committed reference (studies/{study.name}, {reference['mode']} mode, "
                  f"{reference['seeds']} seeds per arm).", ""]
    lines += [*verdict_table(results["checks"], reference), "", "![figure](figure.png)", "", "## How it was run", "",
              f"- command: `{results['command']}`, finished {results['finished']}: "
              + (f"{results['train_s'] / 60:.1f} minutes of training (the runs' own time, summed; a run another "
                 f"study or an earlier invocation finished is reused), {results['elapsed_s'] / 60:.1f} minutes "
                 "for this invocation" if study.trained else f"{results['elapsed_s']:.1f} s"),
              f"- machine: {_machine_line(results)}",
              *([f"- runs: {results['runs_note']}"] if results.get("runs_note") else []),
              f"- mode: {results['mode']}" + (f" ({mode.note})" if mode.note else "")]
    convergence = results.get("convergence")
    if convergence:
        missed = convergence["not_converged"]
        lines.append(f"- convergence: {convergence['rule']}; " + (
            f"not met by {len(missed)} run(s): {', '.join(missed)} (their trained verdicts are left inconclusive)"
            if missed else "met by every run"))
    if study.trained:
        start = "its own trainer's defaults" if study.trainer else study.recipe_of(results["mode"]) or "the task defaults"
        lines += [f"- seeds: {results['seeds']} per arm; starting from: {start}"
                  + (f"; the mode's settings: `{json.dumps(dict(mode.config))}`" if mode.config else ""),
                  "- arms:", ""]
        lines += ["| arm | model | settings |", "|---|---|---|"]
        lines += [f"| {arm.legend} | {arm.model} | `{json.dumps(dict(arm.config))}` |" for arm in study.arms_of(
            results["mode"])]
        lines += ["", "Each run's own command (`cnnlab train` or the study's own trainer's) is in `results.json`; "
                  "its metrics and config are in `runs/`, so `cnnlab study report NAME` rebuilds this page."]
    lines += ["", "## Verdict rule", "", study.verdict_rule]
    if results.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in results["notes"]]]
    atomic_write(path, ("\n".join(lines) + "\n").encode())


def overview_table(paths: list[Path], summaries: list[dict[str, Any]]) -> list[str]:
    """One row a study: its claim and what it decided (:func:`tally`)."""
    lines = ["| study | claim | trained decided (fidelity) | trained inconclusive | analytic decided | untestable here "
             "| paper inconsistent | identity rows | mode, time |", "|---|---|---|---|---|---|---|---|---|"]
    for path, s in zip(paths, summaries):
        n = tally(s["checks"])
        fidelity = ", ".join(f"{v} {k.rsplit(' ', 1)[1]}" for k, v in n.items() if k.startswith("trained decided, "))
        lines.append(f"| [{s['study']}]({path.parent.name}/report.md) | {_cell(s['title'])} | "
                     f"{n['trained decided']}{f' ({fidelity})' if fidelity else ''} | {n['trained inconclusive']} | "
                     f"{n['analytic decided']} | {n['untestable here']} | {n['paper inconsistent']} | {n['identity']} | "
                     f"{s['mode']}, {_duration(s)} |")
    return lines


def write_summary(directory: str | Path) -> Path:
    """``DIR/README.md``: every study's verdict table and figure, from each ``DIR/*/results.json``."""
    root = Path(directory)
    found = sorted(root.glob("*/results.json"))
    if not found:
        raise CnnlabError(f"no study results in {root}: run `cnnlab study run NAME --out {root}/NAME` first")
    summaries = [json.loads(p.read_text()) for p in found]
    totals = [tally(s["checks"]) for s in summaries]
    decided = sum(t["trained decided"] for t in totals)
    lines = ["# The case studies: verdicts", "",
             "Every claim checked by `cnnlab study run`; rebuilt by `cnnlab study report` from each study's "
             "`results.json` and kept runs.", "",
             f"Trained claims decided: {decided} (of {sum(t['trained decided'] + t['trained inconclusive'] for t in totals)} "
             f"trained claims); analytic claims decided: {sum(t['analytic decided'] for t in totals)}; untestable here: "
             f"{sum(t['untestable here'] for t in totals)}; paper inconsistent: "
             f"{sum(t['paper inconsistent'] for t in totals)}; identity rows (shown, not counted): "
             f"{sum(t['identity'] for t in totals)}.", "", *HOW_A_VERDICT_IS_MADE, "", *overview_table(found, summaries), "",
             "| study | source | claim | paper | measured | verdict | why | mode, time |",
             "|---|---|---|---|---|---|---|---|"]
    for path, s in zip(found, summaries):
        first = (f"[{s['study']}]({path.parent.name}/report.md)", _cell(s["source"]), f"{s['mode']}, {_duration(s)}")
        for i, c in enumerate(s["checks"]):
            study, source, cost = first if i == 0 else ("", "", "")  # the study's columns once, on its first row
            lines.append(f"| {study} | {source} | {_cell(c['claim'])} | {_cell(c['paper'])} | "
                         f"{_cell(c['measured'])} | {verdict_label(c)} | {_cell(_why(c))} | {cost} |")
    for path, s in zip(found, summaries):
        lines += ["", f"## {s['study']}: {s['title']}", "", f"{s['source']}. Machine: {_machine_line(s)}.", "",
                  f"![{s['study']}]({path.parent.name}/figure.png)"]
    out = root / "README.md"
    atomic_write(out, ("\n".join(lines) + "\n").encode())
    return out


HOW_A_VERDICT_IS_MADE = [
    "## How a verdict is made", "",
    "- `reproduced`: the paper's direction, significant, and not clearly smaller than the paper's effect on the same "
    "data (or, for a claim of no effect, equivalence shown within the study's stated margin; for an exact number, "
    "inside its tolerance or the rounding interval of the paper's printed values).",
    "- `partly reproduced`: the paper's direction, significant, but the whole 95% interval lies below half the paper's "
    "effect, where the design could have shown the paper's size.",
    "- `not reproduced`: significant in the opposite direction, an equivalence rejected, or an exact number outside its "
    "interval. Never on a `proxy`: there a significant opposite result is `inconclusive`.",
    "- `inconclusive`: not significant, or fewer than 3 seeds in an arm.",
    "- `untestable here`: the design cannot measure the claim (its ceiling, data not available offline, a network "
    "the paper does not specify); the reason is given.",
    "- `paper inconsistent`: the paper's own numbers contradict each other; both are shown.",
    "- Significance: Welch's t-test, two-sided, alpha 0.05, critical value of t at Welch's degrees of freedom; a "
    "paired t-test where the arms are measured on the same trained models; logarithms for \"n times\" claims (half "
    "an effect of xN is x√N). Every "
    "trained row shows n per arm, the effect, its 95% interval and p; `results.json` keeps each arm's values.",
    "- The paper's effect is used only where the paper publishes one on the same data and a comparable network; "
    "otherwise the row is judged on its direction only and says so.",
    "- Fidelity: `exact` (the paper's network, data and protocol), `scaled` (the paper's network and data on a shorter "
    "schedule that meets a stated convergence criterion), `proxy` (another network or dataset, or a schedule that "
    "has not converged: every fast mode).",
    "- Kinds: `trained`, `analytic` (exact counts against the paper's), `identity` (true by construction: shown, "
    "never counted).",
]
