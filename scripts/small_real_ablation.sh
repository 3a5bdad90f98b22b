#!/usr/bin/env bash
# The runs of benchmarks/results/small_real_ablation.md, as they were made on a shared 2-core CPU:
# one row per process, one torch thread each (two threads per process on two shared cores ran 4x
# slower), two or three processes at a time, then the table rewritten from every finished run. A
# run already finished (in EXP_ROOT, or in the committed small_real_ablation_curves.csv) is
# skipped, so the script continues a cut session; to run everything again, move that curves file
# away first. Usage:
#   bash scripts/small_real_ablation.sh [ROOT] [EXP_ROOT] [CACHE]
set -euo pipefail
ROOT=${1:-../shared/data/nmnist-real-1k}
EXP=${2:-exp/small_real_ablation}
CACHE=${3:-}
SEEDS=${SEEDS:-0 1 2 3 4}
run() {
  # shellcheck disable=SC2086
  python scripts/small_real_ablation.py --root "$ROOT" --exp-root "$EXP" --seeds $SEEDS \
    --command "bash scripts/small_real_ablation.sh" train.threads=1 ${CACHE:+data.cache_dir=$CACHE} "$@"
}
run --rows baseline &
run --rows "recipe (+experiment=small_real)" &
run --rows "recipe with more simulated data" &
wait
run --rows "simulated recordings mixed in" &
run --rows "cosine lr schedule + weight decay" &
run --rows "event augmentation" &
wait
SEEDS="0 3" run --rows "recipe, longer" &      # tried last, once the table above was in
SEEDS="1 4" run --rows "recipe, longer" &
SEEDS="2" run --rows "recipe, longer" &
wait
SEEDS="0 2 4" run --rows "pre-train, then fine-tune" &     # added in a later session, on a quiet machine
SEEDS="1 3" run --rows "pre-train, then fine-tune" &
wait
SEEDS="0 2 4" run --rows "pre-train on 2 recordings per digit, then fine-tune" &
SEEDS="1 3" run --rows "pre-train on 2 recordings per digit, then fine-tune" &
wait
run --rows "pre-train, then fine-tune, both with event augmentation"   # overfitting: train acc reached 100%
run --tables-only
