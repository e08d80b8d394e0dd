"""MkDocs hooks: the pages that are generated from the code and the committed results.

- ``<!-- models: PATTERN ... -->`` in a page becomes the table of measured against
  paper parameters and multiply-adds (``cnnlab models``; meta-device counts, cached
  per architecture under ``$CNNLAB_CACHE/profiles``).
- ``<!-- summary: NAME -->`` becomes the model's paper-style layer table (``cnnlab summary``).
- ``<!-- studies -->`` becomes the table of every study; each ``studies/NAME/results.json``
  becomes a page ``studies/NAME.md`` with its claim, verdict table and committed figure.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from cnnlab.analysis.tables import models_rows, paper_profile, summary_table

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
# cnnlab models' columns, with the paper's named (the plain-text table repeats "paper").
HEADER = ["model", "task", "input", "params", "paper params", "dev", "MACs", "paper MACs", "dev"]
MARKER = re.compile(r"<!-- (models|summary|studies):? ?(.*?) ?-->")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows])


def _models(patterns: str) -> str:
    rows = [row for pattern in patterns.split() for row in models_rows(pattern)]
    return _table(HEADER, rows)


def _summary(name: str) -> str:
    return "```\n" + summary_table(paper_profile(name)) + "\n```"


def _results() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(STUDIES.glob("*/results.json"))]


def _basis(check: dict[str, Any]) -> str:
    """What a verdict rests on: a trained proxy's "reproduced" is not an analytic one."""
    return check["kind"] if check["kind"] != "trained" else f"trained, {check['fidelity']}"


def _label(check: dict[str, Any]) -> str:
    # Rows true by construction are shown, never counted as reproductions (studies/README.md).
    return "identity (not counted)" if check["kind"] == "identity" else f"{check['verdict']} ({_basis(check)})"


def _tally(checks: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for check in checks:
        counts[_label(check)] = counts.get(_label(check), 0) + 1
    return ", ".join(f"{n} {label}" for label, n in counts.items())


def _studies() -> str:
    rows = [[f"[{r['study']}](studies/{r['study']}.md)", r["title"], _tally(r["checks"]), r["mode"]]
            for r in _results()]
    return _table(["study", "claim", "verdicts", "mode"], rows)


def _study_page(result: dict[str, Any]) -> str:
    name = result["study"]
    rows = [[c["claim"], c["paper"], c["measured"], f"**{c['verdict']}**", _basis(c), c["reason"]]
            for c in result["checks"]]
    return "\n\n".join([
        f"# `{name}`: {result['title']}",
        f"Source: {result['source']}. Mode: {result['mode']}; repeat it with `{result['command']}`.",
        _table(["claim", "paper", "measured", "verdict", "kind", "why"], rows),
        f"![{name}: the figure of the committed run]({name}/figure.png)",
        f"The full report, with the arms, the machine and the verdict rule, is `studies/{name}/report.md`; "
        f"every number is in `studies/{name}/results.json`.",
    ]) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Adds a page and the figure of every committed study."""
    for result in _results():
        name = result["study"]
        files.append(File.generated(config, f"studies/{name}.md", content=_study_page(result)))
        figure = STUDIES / name / "figure.png"
        if figure.exists():
            files.append(File.generated(config, f"studies/{name}/figure.png", abs_src_path=str(figure)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replaces the markers with the generated tables."""
    makers = {"models": _models, "summary": _summary, "studies": lambda _: _studies()}
    return MARKER.sub(lambda m: makers[m.group(1)](m.group(2)), markdown)
