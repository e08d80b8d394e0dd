"""The user's guide runs: the site builds strictly, and every snippet of README.md and
docs/ runs as written, page by page, in order (issue 30).

A page's python blocks share one namespace and its shell blocks one folder, so a later
step may use what an earlier one made. A block right below ``<!-- long -->`` (a full
training run, the whole test suite) or ``<!-- not run: REASON -->`` (inputs nobody can
ship: a zoo's weights, ImageNet, a cluster) is skipped here and run by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?P<mark><!-- (?:long|not run: [^>]+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
RUNNABLE = ("python", "bash")


def snippets(page: Path) -> list[tuple[str, str]]:
    """The page's runnable blocks as (language, code), in order, the marked ones left out."""
    return [(m["lang"], m["code"]) for m in BLOCK.finditer(page.read_text())
            if m["lang"] in RUNNABLE and not m["mark"]]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    # --strict turns every warning (a broken link, a missing page or image) into a failure.
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for page in ("index.html", "models/resnet/index.html", "studies/lrn/index.html", "api/index.html"):
        assert (tmp_path / "site" / page).is_file()
    resnet = (tmp_path / "site" / "models/resnet/index.html").read_text()
    assert "resnet1202" in resnet and "paper MACs" in resnet  # the generated table is there
    assert (tmp_path / "site" / "studies/lrn/figure.png").stat().st_size > 0


def test_every_snippet_block_is_either_run_or_marked() -> None:
    # A fence of another language (console, text) shows output; it must not hide a command.
    for page in PAGES:
        for m in BLOCK.finditer(page.read_text()):
            first = m["code"].lstrip().split("\n", 1)[0]
            if m["lang"] not in RUNNABLE:
                assert not first.startswith(("$ ", "cnnlab ", "import ")), f"{page.name}: {first}"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if snippets(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_page_runs(page: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_DATA", str(data_dir))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for n, (lang, code) in enumerate(snippets(page), 1):
        if lang == "python":
            exec(compile(code, f"{page.name} block {n}", "exec"), namespace)  # noqa: S102
        else:
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True)
            assert done.returncode == 0, f"{page.name} block {n} failed:\n{code}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_the_cited_tests_exist() -> None:
    # A promise names the test that holds it; a renamed test must not leave a dead citation.
    cited = re.compile(r"(?:tests/)?(test_\w+\.py)?::(test_\w+)")
    for page in PAGES:
        module = None
        for m in cited.finditer(page.read_text()):
            module = m[1] or module  # `::name` alone continues the last module named
            assert module and f"def {m[2]}(" in (ROOT / "tests" / module).read_text(), f"{page.name}: {m[0]}"
