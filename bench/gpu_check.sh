#!/usr/bin/env bash
# One command for a CUDA machine, within 8 minutes, installing nothing beyond the project:
#   - the training step at the small and TIMIT sizes: naive, eager, compile, CUDA graph, each
#     in fp32 and bf16-mixed, with TFLOP/s against the measured bf16 matmul peak;
#   - IWAE with K = 40, and generation's real-time factor at batch 1 (bench/gpu_check.py);
#   - a 200-step vrnn-fit run of conf/demo.yaml on the GPU, its steps/s against its bare step
#     (bench/bench_whole_run.py).
# Without CUDA it runs the quick CPU fallback of both (tiny sizes, seconds; CI runs it).
#
#   bash bench/gpu_check.sh            # from anywhere; PYTHON=... picks the interpreter
set -uo pipefail
status=0  # one part failing (or cut by its time limit) does not stop the next; the exit says
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

if ! "$python" -c "import vrnn_lightning" 2>/dev/null; then
  "$python" -m pip install --quiet --no-deps -e .  # the project only: its deps must be there
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if "$python" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  timeout 330 "$python" -u bench/gpu_check.py --repeats 5 || status=$?
  echo
  echo "vrnn-fit, conf/demo.yaml, 200 steps on the GPU:"
  timeout 140 "$python" -u bench/bench_whole_run.py --steps 200 \
    trainer.accelerator=gpu trainer.devices=1 trainer.enable_progress_bar=false \
    "data.cache_dir=$work/cache" || status=$?
else
  echo "no CUDA device: the quick CPU fallback"
  "$python" bench/gpu_check.py --cpu --repeats 2 || status=$?
  echo
  echo "vrnn-fit, conf/debug.yaml (the tiny run), 6 steps on the CPU:"
  "$python" bench/bench_whole_run.py --config conf/debug.yaml --steps 6 --warmup 1 \
    --repeats 2 trainer.limit_val_batches=1 "data.cache_dir=$work/cache" || status=$?
fi
exit "$status"
