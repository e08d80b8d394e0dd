#!/usr/bin/env bash
# The main job: sets up .venv if needed, then trains resnet20 (He et al. 2016, the
# CIFAR ResNet) on the embedded scikit-learn digits upsampled to 32x32, and prints
# the test accuracy and the run directory (config, metrics.csv, TensorBoard events,
# curves.png, checkpoints). 98.3% test accuracy in 5 epochs, under two minutes on 2 CPU cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cnnlab="$root/.venv/bin/cnnlab"
# PyTorch's own thread policy (all cores): on an idle machine a forced single thread
# throws away ~40% of the speed. On a machine shared with other busy jobs, set
# OMP_NUM_THREADS=1 yourself: there two threads spin-wait for each other.
out="$root/runs/main-$(date +%Y%m%d-%H%M%S)"
"$cnnlab" train resnet20 --recipe digits --out "$out" "$@"
