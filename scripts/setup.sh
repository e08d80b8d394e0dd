#!/usr/bin/env bash
# Creates .venv beside the repository and installs cnnlab into it, once.
# torch is installed first and pinned: on these machines 2.13.0 is the local CPU
# build, while an unpinned torch would pull several GB of CUDA packages.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.cnnlab-installed"
# Reinstalled when what the install builds from changes (the word2vec kernel is compiled then).
stale=0
for source in "$root/pyproject.toml" "$root/setup.py" "$root/cnnlab/text/word2vec_kernel.c"; do
    [ "$source" -nt "$stamp" ] && stale=1
done
if [ ! -f "$stamp" ] || [ "$stale" = 1 ]; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "torch==2.13.0"
    "$venv/bin/python" -m pip install -q -e "$root[test]"
    touch "$stamp"
fi
