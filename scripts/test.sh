#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export CNNLAB_DATA="${CNNLAB_DATA:-$root/../shared/data}"
exec "$root/.venv/bin/python" -m pytest -q "$@"
