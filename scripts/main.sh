#!/usr/bin/env bash
# The main job: sets up .venv if needed, lists the models and shows ResNet-50's table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cnnlab="$root/.venv/bin/cnnlab"
"$cnnlab" models
"$cnnlab" summary resnet50
