#!/usr/bin/env bash
# Every GPU measurement that issue 5 asks for, in one run, for a session that is lent a GPU for a
# few minutes. Results go to benchmarks/results/<gpu>-*.{md,txt}, named after the GPU; commit them.
#
#   bash benchmarks/gpu_session.sh            # about 6-8 minutes on an H100/H200-class GPU
#
# Order: the cheapest and most important first, so that a session cut short still leaves results.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
"$py" -c "import torch" 2>/dev/null || {
    echo "gpu_session.sh: '$py' cannot import torch; activate the project's environment first" >&2; exit 2; }
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_session.sh: no CUDA device visible to torch; run it on a machine with a GPU" >&2; exit 2; }
gpu=$("$py" -c "import torch; print(torch.cuda.get_device_name(0).lower().replace(' ', '-'))")
out=benchmarks/results
status=0
step() { echo "== $*"; "$@" || { echo "== failed ($?): $*"; status=1; }; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# 1. the step benchmark, T=10 and 25 at batch 32, with its JSON line (~1 min)
step bash -c "set -o pipefail; \"$py\" benchmarks/train_speed.py --device cuda --quick | tee $out/$gpu-quick.txt"
# 2. N-MNIST-sized epochs (60,000 recordings, T=25): float32 and bf16, two batch sizes (~2 min)
for args in "--batch 256" "--batch 1024" "--batch 256 --amp bf16" "--batch 1024 --amp bf16"; do
    step "$py" benchmarks/epoch_time.py --device cuda $args --save "$out/$gpu-epoch.md"
done
# 3. the options one at a time at a large batch (compiles: ~2-3 min)
step "$py" benchmarks/train_speed.py --device cuda --options --batch 1024 --steps 2 --rounds 3 \
    --save "$out/$gpu-options.md"
# 4. the full grid of T and batch (~2 min)
step "$py" benchmarks/train_speed.py --device cuda --steps 2 --rounds 3 --save "$out/$gpu.md"
# 5. the peers installed (pip install -e ".[peers]"): snnTorch tutorial, Norse, SpikingJelly with each of
#    its LIF implementations it finds (torch, triton, cuda); the GPU target is read at T=25, batch 128
step "$py" benchmarks/train_speed.py --device cuda --peers --T 10 25 50 --batch 32 128 --steps 2 --rounds 3 \
    --save "$out/$gpu-peers.md"
ls -l $out/$gpu*
exit $status
