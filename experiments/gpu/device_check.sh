#!/usr/bin/env bash
# The ONE check of the CUDA executors on a GPU machine (docs/cuda.md): a KVF_GPU_CHECK_ONLY build (kvf_cuda, the
# torch bridge, the tests, the benchmark; no parsers, runtime, CLI or Qt), then kvf_test_select, kvf_test_cuda
# (CUDA vs CPU, exact) and kvf_bench_cuda (S = 4k, 32k, 128k; 8 kv heads, d = 128, fp32). Run from the repository
# root. Eigen and Catch2 come from .vendor/ (scripts/vendor_headers.sh, run on a machine that has them) when the
# machine has no system copies. On this workplace's device tool:
#   run(command="bash experiments/gpu/device_check.sh", carry=[".vendor"], timeout_s=480)
# Results go to $OUT (default ./gpucheck-out): summary.txt, device.txt, configure.log, build.log, select.txt,
# test_cuda.txt, bench.csv. Exit status: 0 when every step passed. Each step has a time limit (build 240 s, tests
# 150 s, benchmark 60 s), so a hang cannot eat the session's device time.
#   KVF_GPUCHECK_BUILD  build dir (default /tmp/kvf-gpucheck)    PYTHON  the python whose torch is used (python3)
#   KVF_GPUCHECK_DRY=1  configure and build only (for a machine without a GPU)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-$PWD/gpucheck-out}
build=${KVF_GPUCHECK_BUILD:-/tmp/kvf-gpucheck}
python=$(command -v "${PYTHON:-python3}")
jobs=${JOBS:-$(nproc)}
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
status=0
t0=$(date +%s)
step() {  # step NAME LOG CMD...: runs CMD with its output in LOG, one line in the summary
  local name=$1 log=$2 s rc
  shift 2
  s=$(date +%s)
  "$@" >"$log" 2>&1
  rc=$?
  echo "$name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)") in $(($(date +%s) - s)) s -> $(basename "$log")" | tee -a "$summary"
  [ $rc -eq 0 ] || status=1
  return $rc
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1; nvcc --version 2>&1 | tail -1
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1; } >"$out/device.txt"

vendored=()
if [ -f .vendor/eigen3/Eigen/Core ] && [ -f .vendor/catch2/catch2/catch.hpp ]; then
  vendored=(-DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON)  # the same build everywhere
fi
step configure "$out/configure.log" cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVF_GPU_CHECK_ONLY=ON \
  -DKVF_CUDA=ON -DKVF_PYTHON="$python" "${vendored[@]}" || { cat "$summary"; exit 1; }
step build "$out/build.log" timeout 240 cmake --build "$build" -j "$jobs" --target kvf_test_select kvf_test_cuda kvf_bench_cuda ||
  { tail -40 "$out/build.log"; cat "$summary"; exit 1; }
if [ "${KVF_GPUCHECK_DRY:-0}" = 1 ]; then
  echo "dry run: built in $(($(date +%s) - t0)) s; tests and benchmark not run" | tee -a "$summary"
  exit $status
fi

step select "$out/select.txt" "$build/tests/kvf_test_select"
# -d yes: per-case durations; a skipped GPU case here means the machine has no usable GPU: count it as a failure.
step test_cuda "$out/test_cuda.txt" timeout 150 "$build/tests/kvf_test_cuda" -d yes
if grep -q "skipped:" "$out/test_cuda.txt"; then
  echo "test_cuda: GPU cases SKIPPED ($(grep -m1 -A1 'skipped:' "$out/test_cuda.txt" | tr -s ' \n' ' '))" | tee -a "$summary"
  status=1
fi
tail -3 "$out/test_cuda.txt" | tee -a "$summary"
step bench "$out/bench.csv" timeout 60 "$build/experiments/gpu/kvf_bench_cuda"
cat "$out/bench.csv" | tee -a "$summary"
echo "total: $(($(date +%s) - t0)) s, status $status" | tee -a "$summary"
exit $status
