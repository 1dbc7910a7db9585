#!/usr/bin/env bash
# Downloads the Python wheels that the GPU machine lacks into .whl/ (git-ignored), for experiments/gpu/
# bench_kvpress_gpu.py there (python3 3.12 with torch 2.11.0+cu130 and transformers 5.17.0, no network;
# /work/.library/device/README.md's pip download recipe, docs/cuda.md "The GPU check"). About 17 MB.
#
# kvpress 0.5.5 (the version of docs/bench-presses.md and the parity fixtures) and what it needs beside the image:
#   transformers 5.2.0   kvpress pins transformers<5.3 (the image's 5.17.0 is outside it); same as this .venv
#   tokenizers 0.22.2    transformers 5.2.0 checks tokenizers<=0.23.0 at import (the image has 0.23.2)
#   cachetools, datasets (+ dill, multiprocess), fire (+ termcolor): imported by `import kvpress`
#     (DuoAttention / expected_attention_with_stats); absent from the image
# Everything else kvpress, transformers and datasets require (accelerate, huggingface-hub, numpy, pandas, peft,
# pyarrow, requests, safetensors, xxhash, fsspec, six, ...) is in the image (KINDS.md's package list).
# fire 0.6.0 (kvpress: fire<0.7) exists only as a source distribution: it is built into a wheel here (pure Python).
#
# There, before use (device_check.sh does it):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site
#   scripts/gpu_wheels.sh [python (default: .venv/bin/python, else python3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${1:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
dest="$root/.whl"
rm -rf "$dest"
mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d "$dest" kvpress==0.5.5 transformers==5.2.0 tokenizers==0.22.2 cachetools==5.5.2 datasets==5.2.0 dill==0.4.1 \
  multiprocess==0.70.19 termcolor==3.3.0
"$py" -m pip wheel -q --no-deps --no-binary=fire -w "$dest" fire==0.6.0
ls "$dest"/*.whl | sed "s|$root/||"
echo "gpu_wheels: $(ls "$dest"/*.whl | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest"
