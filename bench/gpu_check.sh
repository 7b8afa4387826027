#!/usr/bin/env bash
# One command for a fresh CUDA machine with the checkout and pip, within 8 minutes (--quick:
# about 3), installing nothing itself:
#   preflight  every module it imports, imported for real from outside the checkout (exit 2
#              naming what is missing and the pip command), and whether torch can use the
#              GPUs nvidia-smi lists (exit 1 with torch's, CUDA's and the driver's versions);
#   tables     the training step at the small and TIMIT sizes (--quick: small only): naive,
#              eager, compile, CUDA graph, each in fp32 and bf16-mixed, with TFLOP/s against
#              the measured bf16 matmul peak; IWAE with K = 40 and generation's real-time
#              factor at batch 1 first (bench/gpu_check.py; each row printed as it is timed);
#   whole-run  a vrnn-fit run of conf/demo.yaml on one GPU, its steps/s against its bare
#              step (bench/bench_whole_run.py);
#   ddp        with two GPUs or more: vrnn-fit conf/debug.yaml, strategy=ddp, devices=2,
#              bf16-mixed, a few steps, and its checkpoint.
# Each part runs under `timeout` (the limits add up to the budget); one failing or cut part
# does not stop the next, and the end lists each part's exit code (124: timed out).
# Without CUDA it runs the quick CPU fallback of tables and whole-run (seconds; CI runs it).
#
#   bash bench/gpu_check.sh [--quick]     # from anywhere; PYTHON=... picks the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument $arg (usage: bash bench/gpu_check.sh [--quick])" >&2
       exit 2 ;;
  esac
done
for tool in timeout "$python"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "gpu_check: $tool not found (timeout: coreutils; python: set PYTHON=...)" >&2
    exit 2
  fi
done

# time limits (s) per part: full 60 + 240 + 90 + 70 = 460, --quick 60 + 70 + 30 + 50 = 210
# (+ 5 s each for a part that ignores SIGTERM: `timeout --kill-after=5`), so at most 8 min
# (the preflight's imports alone took 25 s on a loaded 2-core machine)
if [ "$quick" = 1 ]; then
  t_tables=70 t_run=30 t_ddp=50 run_steps=50 tables_args=(--quick --repeats 3)
else
  t_tables=240 t_run=90 t_ddp=70 run_steps=200 tables_args=(--repeats 5)
fi
t_pre="${GPU_CHECK_PREFLIGHT_LIMIT:-60}"  # (a test shortens it)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
parts=()
codes=()
t_start=$SECONDS

part() {  # part NAME LIMIT COMMAND...: run it under timeout, note its exit code
  local name=$1 limit=$2 t0=$SECONDS rc=0
  shift 2
  echo
  echo "=== $name (limit ${limit} s)"
  timeout --kill-after=5 "$limit" "$@" || rc=$?
  [ "$rc" = 124 ] && echo "gpu_check: $name timed out after $limit s"
  parts+=("$(printf '%-10s exit %3s  %4s s' "$name" "$rc" "$((SECONDS - t0))")")
  codes+=("$rc")
  return "$rc"
}

summary() {
  echo
  echo "=== parts (exit 124 = timed out), $((SECONDS - t_start)) s in all"
  printf '  %s\n' "${parts[@]}"
}

# the preflight runs from bench/ (its own folder first on sys.path, not the checkout's root)
if ! part preflight "$t_pre" bash -c 'set -o pipefail; "$0" -u bench/gpu_preflight.py | tee "$1"' \
  "$python" "$work/preflight.txt"; then
  summary
  exit "${codes[0]}"  # 2: something to install; 1: a GPU torch cannot use; 124: it hung
fi
gpus=$(sed -n 's/^gpus=//p' "$work/preflight.txt" | tail -n 1)

if [ "${gpus:-0}" -gt 0 ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  part tables "$t_tables" "$python" -u bench/gpu_check.py "${tables_args[@]}"
  part whole-run "$t_run" "$python" -u bench/bench_whole_run.py --steps "$run_steps" \
    trainer.accelerator=gpu trainer.devices=1 trainer.enable_progress_bar=false \
    "data.cache_dir=$work/cache"
  if [ "$gpus" -ge 2 ]; then
    part ddp "$t_ddp" bash -c '
      set -e
      "$0" -u -m vrnn_lightning.fit --config conf/debug.yaml trainer.accelerator=gpu \
        trainer.strategy=ddp trainer.devices=2 trainer.precision=bf16-mixed \
        trainer.max_steps=20 trainer.max_epochs=2 trainer.limit_val_batches=2 \
        "out_dir=$1/ddp" "data.cache_dir=$1/cache"
      test -s "$1/ddp/checkpoints/last.ckpt"
      echo "ddp: 2 ranks, 20 steps over 2 epochs, $1/ddp/checkpoints/last.ckpt written"' \
      "$python" "$work"
  else
    echo
    echo "=== ddp: skipped (needs two GPUs; $gpus found)"
  fi
else
  echo "no CUDA device: the quick CPU fallback"
  part tables 120 "$python" -u bench/gpu_check.py --cpu --repeats 2
  echo
  echo "vrnn-fit, conf/debug.yaml (the tiny run), 6 steps on the CPU:"
  part whole-run 120 "$python" -u bench/bench_whole_run.py --config conf/debug.yaml --steps 6 \
    --warmup 1 --repeats 2 trainer.limit_val_batches=1 "data.cache_dir=$work/cache"
fi
summary
status=0
for rc in "${codes[@]}"; do
  [ "$rc" = 0 ] || status=1
done
exit "$status"
