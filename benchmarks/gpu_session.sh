#!/usr/bin/env bash
# Every GPU check and measurement of the project in one command, for a GPU machine lent for a few
# minutes. Written for the one this project is lent: an H200, Python 3.12 with torch (no snntorch,
# tonic, omegaconf or hydra, no package index), one command of at most 10 minutes, 15 in all.
#
#   bash benchmarks/gpu_wheels.sh               # here, once: the missing packages as wheels in .whl/
#   bash benchmarks/gpu_session.sh              # there (.whl/ travels with the working tree)
#   DRY_RUN=1 bash benchmarks/gpu_session.sh    # on a CPU: every step at tiny sizes (tests/test_benchmarks.py)
#
# Results: one file per step, $OUT/NN-NAME.txt (the step's whole output; its JSON lines are the
# results), written as the step runs, and $OUT/session.txt (each step's exit status and seconds).
# OUT defaults to benchmarks/results/gpu-session. The machine returns at most 8 files from $OUT:
# keep to 7 steps (merge checks into a step rather than adding an eighth).
#
# Steps run in order, the cheapest and most important first, each under `timeout`; the whole
# session stays under BUDGET seconds (default 540): a step gets at most its own limit and what is
# left, a step for which less than MIN_STEP seconds are left is skipped.
#
# To add a step, add one line at the end:
#     step NAME SECONDS COMMAND [ARGS...]
# The command runs in the repository root with $PY, snn_lib and the wheels importable, and $DEV
# (cuda, or cpu in a dry run); its stdout and stderr are its file. Give it tiny sizes when
# $DRY_RUN is 1 (see the steps below), and have it print a JSON line per result as soon as it has
# one, so that a step stopped by its timeout still reports what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
BUDGET=${BUDGET:-540}
MIN_STEP=${MIN_STEP:-10}
OUT=${OUT:-benchmarks/results/gpu-session}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
summary="$OUT/session.txt"
status=0
n=0

"$PY" -c "import torch" 2>/dev/null || {
    echo "gpu_session.sh: '$PY' cannot import torch; set PYTHON to the Python that has it" >&2; exit 2; }
if [ "$DRY_RUN" = 1 ]; then
    DEV=cpu
else
    DEV=cuda
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "gpu_session.sh: no CUDA device visible to torch; run it on a machine with a GPU (or DRY_RUN=1)" >&2
        exit 2; }
fi

# the packages the machine lacks, from the wheels gpu_wheels.sh made, into a folder of their own
site=${SITE:-${TMPDIR:-/tmp}/snn-session-site}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        "$WHEELS"/*.whl || { echo "gpu_session.sh: installing the wheels of $WHEELS failed" >&2; exit 2; }
    wheels="installed from $WHEELS into $site"
else
    site=""
    wheels="none in $WHEELS (the packages must be installed already)"
fi
export PYTHONPATH="${site:+$site:}$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 DEV DRY_RUN
{ echo "gpu_session.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), DRY_RUN=$DRY_RUN, device $DEV, budget ${BUDGET} s"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); wheels: $wheels"; } > "$summary"
cat "$summary"

step() {  # step NAME SECONDS COMMAND...: COMMAND under timeout, its output in $OUT/NN-NAME.txt
    local name=$1 limit=$2 left rc started
    shift 2
    n=$((n + 1))
    local file
    file=$(printf "%s/%02d-%s.txt" "$OUT" "$n" "$name")
    left=$((BUDGET - SECONDS))
    if [ "$left" -lt "$MIN_STEP" ]; then
        echo "$(printf %02d $n) $name: skipped, ${left} s of the budget left" | tee -a "$summary"
        status=1
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most ${limit} s): $*"
    started=$SECONDS
    timeout --kill-after=5 "$limit" "$@" > "$file" 2>&1
    rc=$?
    local verdict=ok
    [ $rc -ne 0 ] && { verdict="failed (exit $rc)"; status=1; }
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="stopped at its ${limit} s limit"
    echo "$(printf %02d $n) $name: $verdict, $((SECONDS - started)) s of ${limit} s" | tee -a "$summary"
    tail -n 3 "$file" | cut -c 1-300
    return $rc
}

tiny() {  # tiny DRY_RUN_VALUE REAL_VALUE: the value for this mode
    if [ "$DRY_RUN" = 1 ]; then echo "$1"; else echo "$2"; fi
}

# 1. the GPU, the versions, the imports (stop here if they fail)
step preflight 30 "$PY" benchmarks/gpu_checks.py preflight --device "$DEV" || {
    echo "gpu_session.sh: preflight failed; see $OUT/01-preflight.txt" >&2; exit 1; }
# 2. correctness on the GPU: fast vs reference (TF32 off and on), LIF kernels, bf16/fp16 steps, resume
step correctness 120 "$PY" benchmarks/gpu_checks.py correctness --device "$DEV" $(tiny --tiny "")
# 3. epochs of snn-train's train_epoch: 60,000 recordings at T=25, batch 32 to 1024, fp32 and bf16
step epochs 130 "$PY" benchmarks/epoch_time.py --device "$DEV" --T "$(tiny 3 25)" --n "$(tiny 64 60000)" \
    --runs $(tiny "16 32:bf16" "32 128 256 1024 1024:bf16") --warmup-steps "$(tiny 1 10)" --epochs 1
# 4. a profile of 5 steps: kernels per step, share of the time the GPU is busy
step profile 40 "$PY" benchmarks/profile_steps.py --device "$DEV" --T "$(tiny 3 25)" --batch $(tiny 4 "32 256") \
    --steps "$(tiny 2 5)" --warmup "$(tiny 1 3)" --lif $(tiny fused "fused compiled")
# 5. the LIF kernels, torch.compile and CUDA graphs against the snnTorch loop, batch 32 and 256
step compiled 80 "$PY" benchmarks/train_speed.py --device "$DEV" --options --T "$(tiny 3 25)" \
    --batch $(tiny 4 "32 256") --variants $(tiny "fast fused" "fused compiled compile cudagraphs") \
    --steps "$(tiny 1 3)" --rounds "$(tiny 1 3)"
# 6. the peers that are installed (their wheels too): the snnTorch tutorial loop, Norse, SpikingJelly with
#    each of its LIF backends it finds (torch, triton, cuda); the GPU target is read at T=25, batch 128
step peers 80 "$PY" benchmarks/train_speed.py --device "$DEV" --peers --T $(tiny 3 "10 25 50") \
    --batch $(tiny 2 "32 128") --steps "$(tiny 1 2)" --rounds "$(tiny 1 3)"
# 7. data-parallel training from 1 GPU to every GPU of the machine (says so when there is only one)
step ddp 60 "$PY" benchmarks/ddp_speedup.py --device "$DEV" $(tiny "--procs 1 2 --n 64 --T 3 --batch 8" "")

echo "total: ${SECONDS} s of ${BUDGET} s" | tee -a "$summary"
exit $status
