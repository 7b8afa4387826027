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
  echo "vrnn-fit, conf/demo.yaml shrunk to a tiny model and corpus, 6 steps on the CPU:"
  "$python" bench/bench_whole_run.py --steps 6 --repeats 2 \
    trainer.accelerator=cpu trainer.devices=1 trainer.enable_progress_bar=false \
    trainer.limit_val_batches=1 "data.cache_dir=$work/cache" \
    data.synthetic_sequences=12 data.synthetic_seconds=0.5 data.seq_len=10 \
    data.batch_size=4 data.eval_batch_size=4 model.h_dim=16 model.z_dim=4 \
    model.phi_x_dim=8 model.phi_z_dim=8 model.enc_dim=8 model.prior_dim=8 model.dec_dim=8 \
    model.mlp_layers=1 model.n_components=2 sample.n=1 sample.steps=4 || status=$?
fi
exit "$status"
