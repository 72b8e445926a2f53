#!/usr/bin/env bash
# Every device check of docs/performance.md's "Not measured yet" in one command that fits the device
# tool's 10-minute limit (issue 17): the fast engine's exactness and host syncs on the GPU (fp32, bf16),
# the text-side table at full reference size, whole steps at K = 102, MP-FGVC, evaluation at scale, and
# the largest CoCoOp training batch at K = 500.
#
# Here (the CPU machine, in the repository's root), once per session:
#   bash bench/gpu_checks.sh --prepare   # what the GPU machine lacks, into .whl/ (ignored; carry it):
#                                        # wheels of datasets/transformers/..., CLIP's tokenizer
#   TOY=1 bash bench/gpu_checks.sh       # every step on this CPU at toy size (bench/results kept as is)
# There (device tool: run, carry [".whl"], timeout_s 600):
#   bash bench/gpu_checks.sh             # logs and bench/results/*_cuda.* packed into $OUT/gpu_results.tgz
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 transformers==5.24.0 ftfy==6.3.1 wcwidth==0.9.4)

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .whl
  "${PYTHON:-.venv/bin/python}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}" || exit 1
  rm -rf .whl/clip-tokenizer && cp -r ../shared/clip-tokenizer .whl/clip-tokenizer || exit 1
  du -sh .whl
  exit 0
fi

OUT=${OUT:-/tmp/gpu_checks}
WORK=$(mktemp -d) && LOGS=$WORK/logs  # packed into $OUT after every step (a run cut short keeps what it did)
mkdir -p "$LOGS" "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error

if [ "${TOY:-0}" = 1 ]; then  # this CPU, toy sizes, the repository's venv; bench/results restored after
  PY=${PYTHON:-.venv/bin/python}
  TOKENIZER=${TOKENIZER:-../shared/clip-tokenizer}
  DEVICE=cpu DTYPE=float32 SCALE_LIMITS=3  # a CPU is slower: three times each step's GPU time limit
  saved=$(mktemp -d) && cp -a bench/results "$saved/"
  trap 'rm -rf bench/results && cp -a "$saved/results" bench/results && rm -rf "$saved"' EXIT
  EXACT=(--methods coop cocoop --classes 4 --images 2)
  TEXT=(--cases cocoop_train_flowers --reps 1 --reference-reps 1 --rounds 1 --warmup 0 --threads 1)
  STEP=(--methods coop --classes 4 --images 2 --rounds 1 --reps 1 --threads 1)
  MPFGVC=(--classes 4 --images 2 --reps 1 --warmup 0 --threads 1)
  SCALE=(--images 16 --batch-size 8 --threads 1)
  COCOOP=(--classes 4 --max-batch 2)
else  # the GPU machine: its python3 has torch; the carried wheels give the rest
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  PY=python3
  TOKENIZER=$PWD/.whl/clip-tokenizer
  DEVICE=cuda DTYPE=bfloat16 SCALE_LIMITS=1
  EXACT=(--classes 102 --images 8)
  TEXT=(--full-reference)
  STEP=(--classes 102 --rounds 1 --reps 3)
  MPFGVC=(--images 32)
  SCALE=(--images 2048 8192)
  COCOOP=(--classes 500)
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$LOGS/nvidia-smi.txt" 2>&1
fi
"$PY" -c "import torch, transformers, datasets, accelerate; print('torch', torch.__version__, 'cuda',
torch.version.cuda, 'transformers', transformers.__version__, 'datasets', datasets.__version__,
'accelerate', accelerate.__version__)" 2>&1 | tee "$LOGS/versions.txt"

status=0
pack() {
  cp bench/results/*_"$DEVICE".* "$LOGS/" 2>/dev/null
  tar czf "$OUT/gpu_results.tgz" -C "$WORK" logs
}
step() {  # step NAME SECONDS COMMAND...: one check under a time limit; its log in $LOGS/NAME.log
  local name=$1 limit=$(($2 * SCALE_LIMITS))
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name: rc $rc in $((SECONDS - start)) s (limit $limit s)" | tee -a "$LOGS/summary.txt"
  [ $rc -eq 0 ] || { status=1; tail -n 5 "$LOGS/$name.log"; }
  pack
}
common=(--tokenizer "$TOKENIZER" --device "$DEVICE")
step cuda_exactness 60 "$PY" bench/cuda_exactness.py "${common[@]}" "${EXACT[@]}"
step text_engine 120 "$PY" bench/text_engine.py "${common[@]}" --dtype "$DTYPE" "${TEXT[@]}"
step whole_step 160 "$PY" bench/whole_step.py "${common[@]}" --dtype "$DTYPE" "${STEP[@]}"
step mpfgvc 50 "$PY" bench/mpfgvc.py "${common[@]}" --dtype "$DTYPE" "${MPFGVC[@]}"
step eval_scale 50 "$PY" bench/eval_scale.py "${common[@]}" --dtype "$DTYPE" "${SCALE[@]}"
step cocoop_max_batch 80 "$PY" bench/cocoop_max_batch.py "${common[@]}" --dtype "$DTYPE" "${COCOOP[@]}"
rm -rf "$WORK"
echo "wrote $OUT/gpu_results.tgz (logs, summary, results of every step)"
exit $status
