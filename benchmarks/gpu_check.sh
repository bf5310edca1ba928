#!/usr/bin/env bash
# GPU readiness, in under 5 minutes on one GPU: search-step and train-step
# benchmarks at the paper's sizes (stage 1: 14 cells, C=16, batch 64; stage 2:
# 20 cells; final: 20 cells, C=36, batch 96) in float32 and bfloat16, without
# and with XLA, with peak GPU memory; then the projected time of the paper's
# full CIFAR-10 search. Results: $OUT/steps.jsonl and $OUT/projection.json.
#
#   benchmarks/gpu_check.sh [OUT]        (default OUT: benchmarks/results/gpu_check)
#
# Needs TensorFlow with GPU support in $PYTHON (default .venv/bin/python):
#   .venv/bin/pip install tensorflow[and-cuda]==2.21.0
# Runs are ordered by importance and each is bounded; what does not fit in
# BUDGET_S seconds (default 280) is recorded as skipped, a run that fails or
# outlasts its bound as failed (with its exit status; 124: timed out).
# REQUIRE_GPU=0 runs the same script without a GPU (a dry run of the script
# itself; on a 2-core CPU most runs outlast their bounds), STEPS (default 10)
# sets the timed steps per run.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-benchmarks/results/gpu_check}
BUDGET_S=${BUDGET_S:-280}
REQUIRE_GPU=${REQUIRE_GPU:-1}
STEPS=${STEPS:-10}
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=2
start=$SECONDS

# Checked before anything is written, so a machine without a GPU leaves
# earlier results in OUT as they were.
if (( REQUIRE_GPU )) &&
   ! "$PYTHON" -c "import tensorflow as tf, sys; sys.exit(not tf.config.list_physical_devices('GPU'))"; then
  echo "gpu_check: TensorFlow in $PYTHON sees no GPU (install tensorflow[and-cuda]," \
       "or set REQUIRE_GPU=0 for a dry run on the CPU)." >&2
  exit 1
fi
mkdir -p "$OUT"
LINES="$OUT/steps.jsonl"
: > "$LINES"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1

run() {  # run NAME LIMIT_S SCRIPT ARGS...: one benchmark, bounded by LIMIT_S and the budget
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET_S - (SECONDS - start)))
  if (( left < 15 )); then
    echo "{\"run\": \"$name\", \"skipped\": \"time budget of ${BUDGET_S}s spent\"}" >> "$LINES"
    return
  fi
  (( limit > left )) && limit=$left
  echo "== $name (at most ${limit}s)" >&2
  timeout "$limit" "$PYTHON" "$@" --output="$LINES" > /dev/null
  local status=$?
  if (( status != 0 )); then
    echo "{\"run\": \"$name\", \"failed\": $status}" >> "$LINES"
  fi
}

search=(benchmarks/search_step.py --channels=16 --batch_size=64 --image_size=32 --steps=$STEPS)
train=(benchmarks/train_step.py --channels=36 --num_cells=20 --batch_size=96 --image_size=32 --steps=$STEPS)
for xla in nojit_compile jit_compile; do
  for precision in float32 mixed_bfloat16; do
    run "search stage1 $precision $xla" 75 "${search[@]}" --spaces=stage1 --num_cells=14 \
      --precision=$precision --$xla
    run "train final $precision $xla" 60 "${train[@]}" --precision=$precision --$xla
  done
  run "search stage2 mixed_bfloat16 $xla" 75 "${search[@]}" --spaces=stage2 --num_cells=20 \
    --precision=mixed_bfloat16 --$xla
done
"$PYTHON" benchmarks/project_search.py "$LINES" > "$OUT/projection.json"
echo "gpu_check: $((SECONDS - start)) s; results in $OUT" >&2
cat "$OUT/projection.json"
