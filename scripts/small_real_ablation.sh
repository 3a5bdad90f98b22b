#!/usr/bin/env bash
# The runs of benchmarks/results/small_real_ablation.md, as they were made on a 2-core CPU: three
# processes of one thread each (two threads per process on two shared cores ran 4x slower): the
# recipe's seeds; the baseline's, then the levers'; the longer recipe's (started later, once the
# first seeds showed the short recipe would fall short of 99%). Usage:
#   bash scripts/small_real_ablation.sh [ROOT] [EXP_ROOT] [CACHE]
set -euo pipefail
ROOT=${1:-../shared/data/nmnist-real-1k}
EXP=${2:-exp/small_real_ablation}
CACHE=${3:-}
run() {
  python scripts/small_real_ablation.py --root "$ROOT" --exp-root "$EXP" \
    --command "bash scripts/small_real_ablation.sh" train.threads=1 ${CACHE:+data.cache_dir=$CACHE} "$@"
}
run --rows "recipe (+experiment=small_real)" --seeds 0 1 2 3 4 &
recipe=$!
run --rows "recipe with more simulated data" --seeds 0 1 2 3 4 &
more=$!
run --rows baseline --seeds 0 1 2 3 4
run --rows "simulated recordings mixed in" "cosine lr schedule + weight decay" "event augmentation" \
  --seeds 0 1 2 3 4
wait $recipe $more
run --tables-only
