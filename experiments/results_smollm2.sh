#!/usr/bin/env bash
# Regenerates the data and figures of docs/results.md on the default model (SmolLM2-135M-Instruct, CPU).
# Resumable: every sweep appends finished cells to its JSONL file and skips them on a rerun; kill it at any time.
#   experiments/results_smollm2.sh [OUT_DIR]        (default: results/)
# Environment: BUILD (default build), SHARDS (parallel sweep processes, default 2), SAMPLES (per task, default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results}
BUILD=${BUILD:-build}
SHARDS=${SHARDS:-2}
SAMPLES=${SAMPLES:-5}
KVF=$BUILD/experiments/kvforge
FIG=$BUILD/viz/kvfigures
mkdir -p "$OUT"

PRESSES=no_press,knorm,random,streaming_llm,snapkv,tova,observed_attention,expected_attention,adakv_snapkv,keydiff,lagkv,pyramidkv,chunkkv,block_keydiff

# 1. RULER-style table: every kvpress press name kvforge registers x 0.25/0.5/0.75, 2048 tokens.
pids=()
for ((i = 0; i < SHARDS; i++)); do
  "$KVF" sweep --model default --presses "$PRESSES" --ratios 0.25,0.5,0.75 \
    --task-list niah_single_1,niah_single_2,niah_multikey_1,vt --lengths 2048 --num_samples "$SAMPLES" \
    --max_new_tokens 24 --threads 1 --shard "$i/$SHARDS" --out "$OUT/ruler2048.shard$i.jsonl" &
  pids+=($!)
done
wait "${pids[@]}"
"$KVF" sweep --merge "$OUT"/ruler2048.shard*.jsonl --out "$OUT/ruler2048.jsonl"
"$KVF" sweep --summary "$OUT/ruler2048.jsonl" --csv "$OUT/ruler2048_cells.csv" > "$OUT/ruler2048.md"
"$FIG" ratio-curves --in "$OUT/ruler2048.jsonl" --out "$OUT/ruler2048"

# 2. Needle grid: context length x depth, no press and four presses at 0.5.
"$KVF" sweep --model default --dataset needle_in_haystack --presses no_press,knorm,streaming_llm,snapkv,expected_attention \
  --ratios 0.5 --lengths 512,1024,2048 --needle_depth 0,25,50,75,100 --num_samples 1 --max_new_tokens 24 \
  --threads 2 --out "$OUT/needle.jsonl"
"$FIG" needle-heatmap --in "$OUT/needle.jsonl" --out "$OUT/needle"

# 3. Speed and memory vs context length and ratio (random weights of SmolLM2's shape; run on an idle machine).
"$KVF" bench speed-memory --preset smollm2-135m --lengths 512,1024,2048,4096 --ratios 0,0.5,0.75 \
  --press_name knorm --decode-tokens 16 --threads 2 --out "$OUT/speed_memory_smollm2.csv"
"$FIG" speed-memory --in "$OUT/speed_memory_smollm2.csv" --out "$OUT/speed_memory_smollm2"
echo "results in $OUT/"
