"""The package as a user installs it: a wheel built from the checkout carries every
file a command reads, and an installed (not editable) cnnlab finds its recipes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from cnnlab.train.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (so the build leaves nothing in it)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(ROOT / "cnnlab", source / "cnnlab", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True)
    (built,) = out.glob("cnnlab-*.whl")
    return built


def test_the_wheel_carries_every_file_the_package_reads(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    # Sources compiled at install (the word2vec kernel's .c) ship as what they compile to.
    data = [p.relative_to(ROOT).as_posix() for p in (ROOT / "cnnlab").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc", ".so", ".c") and "__pycache__" not in p.parts]
    assert any(name.startswith("cnnlab/recipes/") for name in data), "the recipes live inside the package"
    assert sorted(set(data) - names) == [], "files in cnnlab/ that the wheel leaves out"
    assert any(name.startswith("cnnlab/text/_word2vec_kernel") for name in names), "the compiled word2vec kernel"


def test_an_installed_wheel_trains_with_a_shipped_recipe(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # Run from an empty folder, with the installed copy first on the path, so neither the
    # checkout nor the editable install can supply the recipe.
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import cnnlab; print(cnnlab.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(target)
    done = subprocess.run([sys.executable, "-m", "cnnlab", "train", "resnet20", "--recipe", "digits",
                           "--max-steps", "1", "--out", str(tmp_path / "run")],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    recipe = load_recipe(ROOT / "cnnlab" / "recipes" / "digits.yaml")
    del recipe["precision"]  # resolved at the start of the run
    assert {key: config[key] for key in recipe} == recipe, "the run used the shipped recipe"
    assert (tmp_path / "run" / "checkpoints" / "last.json").is_file()
