#!/usr/bin/env bash
# The main job: sets up .venv if needed, then trains resnet20 (He et al. 2016, the
# CIFAR ResNet) on the embedded scikit-learn digits upsampled to 32x32, and prints
# the test accuracy and the run directory (config, metrics.csv, TensorBoard events,
# curves.png, checkpoints). 98.3% test accuracy in 5 epochs, under two minutes on 2 CPU cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cnnlab="$root/.venv/bin/cnnlab"
# One intra-op thread unless told otherwise: on a 2-core machine shared with other
# jobs, two OpenMP threads spin-wait for each other. At load average 9-10 we
# measured 10-20 img/s with two threads and 88 img/s with one. With one thread the
# whole job took 1:55 (90 s of it training) and 24 s of CPU time.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
out="$root/runs/main-$(date +%Y%m%d-%H%M%S)"
"$cnnlab" train resnet20 --recipe "$root/recipes/digits.yaml" --out "$out" "$@"
