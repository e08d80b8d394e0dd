#!/usr/bin/env bash
# Creates .venv beside the repository and installs cnnlab into it, once.
# torch is installed first and pinned: on these machines 2.13.0 is the local CPU
# build, while an unpinned torch would pull several GB of CUDA packages.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.cnnlab-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "torch==2.13.0"
    "$venv/bin/python" -m pip install -q -e "$root[test]"
    touch "$stamp"
fi
