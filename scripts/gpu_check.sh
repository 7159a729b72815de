#!/usr/bin/env bash
# One prepared GPU check, under 6 minutes on one GPU:
#   1. the tests that need CUDA (every test file that asks torch.cuda.is_available(), whole);
#   2. one epoch (at most MAX_STEPS steps) of each shipped shapes recipe on the GPU with AMP,
#      channels_last and torch.compile, its wall time and last validation metrics;
#   3. scripts/bench_train.py on the GPU (when it takes --device).
# Usage: bash scripts/gpu_check.sh [OUT_DIR]      (default $OUT or /tmp/gpu_check)
# Prints a summary at the end and writes it to OUT_DIR/summary.txt; exit 1 if any part failed.
# A dry run of its mechanics on a CPU machine:
#   DEVICE=cpu COMPILE=false MAX_STEPS=2 EXTRA="data.val.num_images=16" bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
TRAINER=${TRAINER:-.venv/bin/trainer}
OUT_DIR=${1:-${OUT:-/tmp/gpu_check}}
MAX_STEPS=${MAX_STEPS:-150}
DEVICE=${DEVICE:-cuda}
COMPILE=${COMPILE:-true}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }

if [ "$DEVICE" != cpu ] && ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    note "no CUDA device visible to $PYTHON: nothing to check"
    exit 1
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')" | tee -a "$SUMMARY"

# 1. CUDA tests (about a minute)
mapfile -t cuda_files < <(grep -rl "cuda.is_available" tests --include='*.py' | sort)
start=$(date +%s)
if timeout 120 "$PYTHON" -m pytest -rs -p no:cacheprovider "${cuda_files[@]}" > "$OUT_DIR/pytest.log" 2>&1; then
    note "cuda tests: $(grep -E "passed|failed" "$OUT_DIR/pytest.log" | tail -n 1) ($(( $(date +%s) - start )) s)"
else
    failed=1
    note "cuda tests FAILED: $(grep -E "passed|failed|error" "$OUT_DIR/pytest.log" | tail -n 1) (see $OUT_DIR/pytest.log)"
fi

# 2. one short epoch of each shipped shapes recipe: AMP, channels_last, compile (about 40 s each)
for recipe in recipes/*/*_shapes*.yaml; do
    name=$(basename "$recipe" .yaml)
    start=$(date +%s)
    if timeout 75 "$TRAINER" train "$recipe" training.epochs=1 "training.max_steps_per_epoch=$MAX_STEPS" \
        training.amp=auto training.channels_last=true "training.compile=$COMPILE" "environment.device=$DEVICE" \
        environment.num_workers=4 logging.progress=lines logging.plots=false "${EXTRA_ARGS[@]}" \
        --output-dir "$OUT_DIR/runs" --name "$name" > "$OUT_DIR/$name.log" 2>&1; then
        metrics=$(tail -n 1 "$OUT_DIR/runs/$name/metrics.csv" 2>/dev/null)
        header=$(head -n 1 "$OUT_DIR/runs/$name/metrics.csv" 2>/dev/null)
        note "train $name: ok in $(( $(date +%s) - start )) s; $header = $metrics"
    else
        failed=1
        note "train $name FAILED after $(( $(date +%s) - start )) s: $(tail -n 2 "$OUT_DIR/$name.log" | tr '\n' ' ')"
    fi
done

# 3. the train-step benchmark on the GPU (about a minute)
if "$PYTHON" scripts/bench_train.py --help 2>/dev/null | grep -q -- "--device"; then
    if timeout 120 "$PYTHON" scripts/bench_train.py --device "$DEVICE" > "$OUT_DIR/bench_train.log" 2>&1; then
        note "bench_train cuda:"
        tail -n 8 "$OUT_DIR/bench_train.log" | tee -a "$SUMMARY"
    else
        failed=1
        note "bench_train cuda FAILED (see $OUT_DIR/bench_train.log)"
    fi
else
    note "bench_train: no --device option in scripts/bench_train.py; skipped"
fi

note "gpu_check: $([ $failed -eq 0 ] && echo all passed || echo SOME PARTS FAILED)"
exit $failed
