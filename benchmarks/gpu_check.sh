#!/usr/bin/env bash
# Everything cnnlab wants to know from a CUDA GPU, in one call of about 8 minutes on one H100:
#
#   1. the GPU-only tests (the ones skipped without CUDA);
#   2. a U-Net slice (512x512, width 64) through benchmarks/unet_tile_speed.py on CUDA;
#   3. word2vec's torch backend on CUDA: skip-gram and CBOW on Brown + Lee, words/s;
#   4. the fast recipe (cnnlab/recipes/resnet_cifar_fast.yaml: bf16, compiled) on CUDA, evaluated
#      every epoch: the time to the paper recipe's 87.86% single-crop test accuracy, then
#      the flip test of the last checkpoint (last, in the time the budget leaves).
#
# Each writes its record into $OUT if set (the device machine's folder that comes back),
# else into benchmarks/results/gpu-check-TIME; summary.md lists what each gave. Without a
# CUDA GPU the script stops at once with one line and exit status 2.
#
#   CNNLAB_DATA=/path/to/data bash benchmarks/gpu_check.sh
#
# Python: $PYTHON, else python3 (the device machine's python3 holds a CUDA PyTorch); cnnlab
# runs from this checkout (PYTHONPATH), no install needed. Item 3's GPU test reads the
# vectors through gensim: where gensim is missing, that test fails and summary.md says so.
#
# Data on the device machine: $CNNLAB_DATA must be a folder inside the checkout, since only
# the checkout travels. CIFAR-10's JPEG copy (92 MB) is more than one call carries (64 MiB),
# so it goes in two parts, to the same warm machine (it keeps ignored folders between calls,
# and is given back 30 s after a call: make the second call at once). Once, in the checkout:
#
#   echo /gpu-data/ >> .git/info/exclude
#   mkdir -p gpu-data/a/cifar10-jpg gpu-data/b/cifar10-jpg
#   cp ../shared/data/cifar10-jpg/{test-000,train-000,train-001}.tar gpu-data/a/cifar10-jpg/
#   cp -r ../shared/data/text-corpus gpu-data/a/
#   cp ../shared/data/cifar10-jpg/train-00{2,3}.tar gpu-data/b/cifar10-jpg/
#
# then run `true` carrying gpu-data/a, and at once `bash benchmarks/gpu_check.sh` carrying
# gpu-data/b, with CNNLAB_DATA unset: the script then gathers gpu-data/*/ into one data
# folder of links (gpu-data/all).
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUDGET_S=${GPU_CHECK_BUDGET_S:-480}
TARGET=0.8786  # the paper recipe's single-crop accuracy on the CIFAR-10 JPEG copy (benchmarks/resnet20_paper_recipe.md)

if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check.sh: $PYTHON sees no CUDA GPU (torch.cuda.is_available() is False, or no torch): run it on a GPU machine" >&2
    exit 2
fi

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RECORDS=${OUT:-benchmarks/results/gpu-check-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$RECORDS"
SUMMARY="$RECORDS/summary.md"

if [ -z "${CNNLAB_DATA:-}" ] && [ -d gpu-data ]; then
    mkdir -p gpu-data/all/cifar10-jpg
    for part in gpu-data/*/; do
        [ "$part" = gpu-data/all/ ] && continue
        ln -sf "$PWD/$part"cifar10-jpg/*.tar gpu-data/all/cifar10-jpg/ 2>/dev/null
        [ -d "$part"text-corpus ] && ln -sfn "$PWD/$part"text-corpus gpu-data/all/text-corpus
    done
    export CNNLAB_DATA="$PWD/gpu-data/all"
fi

# One stage: its name, its time limit, its record file, then the command; a line in the summary.
stage() {
    local name=$1 limit=$2 record=$3
    shift 3
    local start=$SECONDS status
    timeout "$limit" "$@" >"$RECORDS/$record" 2>&1
    status=$?
    local verdict="ok"
    [ "$status" -eq 124 ] && verdict="stopped at its ${limit} s limit"
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && verdict="failed (exit $status)"
    echo "| $name | $verdict | $((SECONDS - start)) s | $record |" >>"$SUMMARY"
    echo "gpu_check.sh: $name: $verdict ($((SECONDS - start)) s)"
}

{
    echo "# gpu_check.sh, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); CNNLAB_DATA=${CNNLAB_DATA:-unset}"
    "$PYTHON" -c "import gensim" 2>/dev/null || echo "gensim: missing (word2vec's GPU test needs it to read the vectors)"
    echo '```'
    echo
    echo "| stage | result | wall | record |"
    echo "|---|---|---|---|"
} >"$SUMMARY"

stage "GPU-only tests" 120 gpu_tests.log \
    "$PYTHON" -m pytest -q -rs -p no:cacheprovider \
    "tests/test_augment.py::test_cpu_generator_drives_a_gpu_batch_identically" \
    "tests/test_word2vec.py::test_trains_on_gpu"

stage "U-Net slice on CUDA" 90 unet_slice.md "$PYTHON" benchmarks/unet_tile_speed.py --device cuda --runs 5

stage "word2vec torch backend on CUDA" 90 word2vec_cuda.md "$PYTHON" - <<'EOF'
import os, statistics, time
from pathlib import Path

import torch

from cnnlab.text.datasets import BrownCorpus, ChainCorpus, LineCorpus
from cnnlab.text.word2vec import Word2Vec

data = Path(os.environ["CNNLAB_DATA"]) / "text-corpus"
corpus = list(ChainCorpus(BrownCorpus(data / "brown.zip", lowercase=True),
                          LineCorpus(data / "lee_background.cor", lowercase=True)))
words = sum(map(len, corpus))
print(f"Brown + Lee: {len(corpus)} sentences, {words} words; torch backend on {torch.cuda.get_device_name()}")
print("| mode | run | seconds | corpus words x epochs / s |")
print("|---|---|---:|---:|")
for sg in (1, 0):
    for run in range(3):  # the first run includes CUDA's start-up
        # benchmarks/word2vec_vs_gensim.py's settings (gensim's defaults)
        model = Word2Vec(sg=sg, seed=run, backend="torch", device="cuda", vector_size=100, window=5, negative=5,
                         min_count=5, sample=1e-3, alpha=0.025, min_alpha=1e-4, epochs=5)
        model.build_vocab(corpus)
        torch.cuda.synchronize()
        tic = time.perf_counter()
        model.train(corpus)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
        print(f"| {'skip-gram' if sg else 'CBOW'} | {run + 1} | {seconds:.2f} | {words * model.epochs / seconds:,.0f} |", flush=True)
EOF

# The fast recipe gets what is left of the budget, less a minute for the flip test.
RUN_DIR=$(mktemp -d)/run
LEFT=$((BUDGET_S - SECONDS - 60))
[ "$LEFT" -lt 120 ] && LEFT=120
stage "fast recipe on CUDA (train)" "$LEFT" fast_recipe.log \
    "$PYTHON" -m cnnlab train resnet20 --recipe resnet_cifar_fast --device cuda --set eval_every=1 --out "$RUN_DIR"
cp "$RUN_DIR/metrics.csv" "$RECORDS/fast_recipe_metrics.csv" 2>/dev/null
stage "fast recipe on CUDA (flip test)" 60 fast_recipe_flip.log \
    "$PYTHON" -m cnnlab eval "$RUN_DIR" --protocol flip --device cuda
"$PYTHON" - "$RECORDS/fast_recipe_metrics.csv" "$TARGET" >>"$SUMMARY" 2>&1 <<'EOF'
import csv, sys

path, target = sys.argv[1], float(sys.argv[2])
try:
    rows = [r for r in csv.DictReader(open(path)) if r.get("test_top1_err")]
except OSError:
    rows = []
if not rows:
    print("\nfast recipe: no evaluation recorded (see fast_recipe.log)")
else:
    reached = next((r for r in rows if 1 - float(r["test_top1_err"]) >= target), None)
    last = rows[-1]
    print(f"\nfast recipe: {len(rows)} evaluations; "
          + (f"{target:.2%} first reached at epoch {reached['epoch']}, {float(reached['elapsed_s']):.0f} s into training"
             if reached else f"{target:.2%} not reached single-crop")
          + f"; last: {1 - float(last['test_top1_err']):.2%} at epoch {last['epoch']}, {float(last['elapsed_s']):.0f} s")
EOF
echo "flip test: $(tail -n 1 "$RECORDS/fast_recipe_flip.log" 2>/dev/null)" >>"$SUMMARY"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); whole script $SECONDS s" >>"$SUMMARY"
echo "gpu_check.sh: records in $RECORDS"
