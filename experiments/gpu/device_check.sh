#!/usr/bin/env bash
# The ONE script of a GPU session (issue 6 item 4; docs/cuda.md "The GPU check"). From this workplace's device tool:
#
#   run(command="bash experiments/gpu/device_check.sh", carry=[".vendor", ".whl"], timeout_s=540)
#
# once `sh scripts/vendor_headers.sh` (Eigen, Catch2, nlohmann-json, CLI11, PCRE2 -> .vendor/, ~10 MB) and
# `bash scripts/gpu_wheels.sh` (kvpress 0.5.5 and the wheels it needs beside the image -> .whl/, ~15 MB) have run on
# this (Debian) machine. It builds kvforge there (KVF_VENDORED=ON: every dependency the image lacks from .vendor/;
# KVF_ICU=OFF, KVF_VIZ=OFF, KVF_CUDA=ON), runs every [gpu] test and every GPU benchmark of issue 6, and leaves 8
# files in $OUT:
#   summary.txt         device, one line per step (ok / FAILED / skipped, seconds), the key results
#   build.log           configure + build
#   tests.txt           the [gpu] test binaries (-d yes); a skipped GPU case there counts as a failure
#   steps.log           the output of every other step (kvf_bench_cuda's CSV included)
#   kvpress_press.csv   kvpress's own compression step on CUDA, every mapped press, S = 4k/32k/128k, bf16
#   kvforge_press.csv   kvforge bench-press --device cuda for every registered press, joined with the kvpress rows
#   e2e_kvpress.csv     transformers+kvpress on a random Llama-3.1-8B-shaped model at 128k: prefill, decode, memory
#   speed_memory.csv    kvforge bench speed-memory --device cuda, llama-3.1-8b bf16 at 128k: knorm 0 / 0.5, adakv 0.5
# Exit status 0 only when every step passed.
#
# Steps, each under its own `timeout` and under one deadline for the whole script (KVF_GPUCHECK_DEADLINE_S, 500 s:
# a step that would start with too little time left is skipped and says so), in this order. Estimates for the
# 16-core H200 machine; none of them measured there yet. The build's: the clean dry build here took 566 s on 2 shared
# cores at load ~5.5 (74 jobs, 1143 s of job time, i.e. ~400 core-seconds uncontended); critical path torch PCH ->
# registry_wrappers.cpp -> link, ~60-70 s uncontended, so ~90 s on 14 cores. The GPU steps': from their sizes.
#   info + wheels          ~10 s   (limit  60)
#   configure              ~30 s   (limit  90)
#   build                  ~90 s   (limit 240)  on cores 0..n-3, while kvpress runs pinned to the last 2 cores:
#     kvpress e2e          ~60 s   (limit 120)  bench_kvpress_gpu.py e2e, 128k, ratio 0 and 0.5 (knorm): 2 prefills
#                                               of ~10-15 s (8B, 128k, sdpa), 32 decode tokens, model init
#     kvpress press        ~100 s  (limit 150, budget 130)  bench_kvpress_gpu.py press, median of 3; the GPU is
#                                               otherwise idle during the build; the tests wait for both (~190 s)
#   [gpu] tests            ~60 s   (limit 150 per binary)  kvf_test_select + every test binary with [gpu] cases
#   kvf_bench_cuda         ~10 s   (limit  45)
#   speed-memory           ~110 s  (limit 3 x 90)  knorm at ratio 0 and 0.5, adakv(knorm) at 0.5
#   kvforge bench-press    ~100 s  (what the deadline leaves, at most 150 s; one process per length for all presses,
#                                   15 s per press; a press it did not report is retried in its own process;
#                                   S = 128k, 32k, 4k in that order, so a short budget drops 4k cells first)
#   total                  ~480 s  (deadline 500; with the machine's start, ~10 of the session's 15 device minutes)
#
# Environment:
#   KVF_GPUCHECK_DRY=1        no GPU here: configure + build exactly as there (python3 = .venv/bin/python when it
#                             exists, the same vendored paths, no system Eigen/Catch2/json/CLI11/PCRE2/ICU/Qt), check
#                             that no system header of those was compiled in, install the wheel set into a
#                             python3.12 --target layout, refresh experiments/gpu/presses.json; nothing runs on a GPU
#   KVF_GPUCHECK_QUICK=1      small sizes everywhere (a first check: S up to 32k, e2e at 16k on 4 layers)
#   KVF_GPUCHECK_SKIP         steps not to run, comma-separated first words of their names (wheels, configure,
#                             build, kvpress_e2e, kvpress_press, test_select, test, bench_cuda, speed_memory,
#                             kvforge_press): a rerun on a still-warm machine (the build dir survives) of what failed
#   KVF_GPUCHECK_BUILD        build dir (/tmp/kvf-gpucheck)      PYTHON  the python with torch (python3)
#   KVF_GPUCHECK_DEADLINE_S   whole-script deadline (500)       JOBS    build jobs (cores - 2)
#   OUT                       results folder (/tmp/kvf-gpucheck-out)
{  # the whole script is one compound command: bash reads all of it before running (safe to edit meanwhile)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dry=${KVF_GPUCHECK_DRY:-0}
quick=${KVF_GPUCHECK_QUICK:-0}
out=${OUT:-/tmp/kvf-gpucheck-out}
build=${KVF_GPUCHECK_BUILD:-/tmp/kvf-gpucheck}
deadline=${KVF_GPUCHECK_DEADLINE_S:-500}
build_limit=240
if [ "$dry" = 1 ]; then  # this machine builds on 2 shared cores: no deadline that fits the GPU machine
  deadline=${KVF_GPUCHECK_DEADLINE_S:-7200} build_limit=5400
fi
if [ -n "${PYTHON:-}" ]; then python=$(command -v "$PYTHON"); elif [ "$dry" = 1 ] && [ -x .venv/bin/python ]; then
  python=$root/.venv/bin/python; else python=$(command -v python3); fi
ncpu=$(nproc)
jobs=${JOBS:-$((ncpu > 4 ? ncpu - 2 : ncpu))}
site=${KVF_GPUCHECK_SITE:-/tmp/kvf-gpucheck-site}
tmp=$(mktemp -d /tmp/kvf-gpucheck-tmp.XXXXXX)
mkdir -p "$out"
summary=$out/summary.txt steps=$out/steps.log
: >"$summary"
: >"$steps"
status=0
t0=$(date +%s)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

say() { echo "$*" | tee -a "$summary"; }
left() { echo $((deadline - ($(date +%s) - t0))); }
# step NAME LOG LIMIT CMD...: CMD under `timeout` (LIMIT, cut to what the deadline leaves), output appended to LOG,
# one line in the summary. A step that would get under 15 s is skipped.
step() {
  local name=$1 log=$2 limit=$3 s rc lim
  shift 3
  if [[ ",${KVF_GPUCHECK_SKIP:-}," == *",${name%% *},"* ]]; then
    say "$name: not run (KVF_GPUCHECK_SKIP)"
    return 98
  fi
  lim=$(($(left) - 5))
  [ "$lim" -gt "$limit" ] && lim=$limit
  if [ "$lim" -lt 15 ]; then
    say "$name: SKIPPED (deadline: $(left) s left of $deadline)"
    status=1
    return 99
  fi
  s=$(date +%s)
  echo "==== $name: $* (limit $lim s)" >>"$log"
  timeout -k 10 "$lim" "$@" >>"$log" 2>&1
  rc=$?
  local what="ok"
  [ $rc -eq 0 ] || what="FAILED (rc $rc$([ $rc -eq 124 ] && echo ", timed out after $lim s"))"
  say "$name: $what in $(($(date +%s) - s)) s -> $(basename "$log")"
  [ $rc -eq 0 ] || status=1
  return $rc
}
finish() {
  say "total: $(($(date +%s) - t0)) s, status $status"
  rm -rf "$tmp"
  exit $status
}

# ---- device and software
{
  rev="? (no git repository: the device tool copies the working tree)"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')
  fi
  echo "kvforge device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev, dry=$dry quick=$quick"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
    --format=csv,noheader 2>&1 | head -2 || echo "no nvidia-smi"
  echo "cpu: $ncpu cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), build jobs $jobs"
  echo "nvcc: $(nvcc --version 2>&1 | tail -1); cmake: $(cmake --version | head -1); $("$python" --version 2>&1) ($python)"
} | tee -a "$summary"

# ---- wheels (kvpress and what the image lacks) into $site; the image's packages stay where they are
if ls .whl/*.whl >/dev/null 2>&1; then
  pipargs=(--no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site")
  # Here (no python3.12): install for 3.12 as the device will, which checks the wheel tags and one version each.
  [ "$dry" = 1 ] && pipargs+=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64)
  [[ ",${KVF_GPUCHECK_SKIP:-}," == *,wheels,* ]] || rm -rf "$site"
  step wheels "$steps" 60 "$python" -m pip install -q "${pipargs[@]}" .whl/*.whl
  [ -d "$site" ] && export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
else
  say "wheels: none in .whl/ (bash scripts/gpu_wheels.sh here, then carry .whl): kvpress steps will fail"
fi
"$python" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), '| transformers', transformers.__version__, transformers.__file__)" 2>&1 |
  tail -1 | tee -a "$summary"

# ---- configure: the whole project, dependencies from .vendor/ only
cmakeargs=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKVF_VENDORED=ON -DKVF_VENDOR_DIR="$root/.vendor"
  -DKVF_ICU=OFF -DKVF_VIZ=OFF -DKVF_CUDA=ON -DKVF_PYTHON="$python"
  -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DCMAKE_DISABLE_FIND_PACKAGE_Qt6=ON)
step configure "$out/build.log" 90 cmake "${cmakeargs[@]}"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 98 ]; then tail -30 "$out/build.log"; finish; fi

# ---- build (all but the last 2 cores) while kvpress runs on the GPU (pinned to the last 2 cores)
pin_build=() pin_py=()
if command -v taskset >/dev/null && [ "$ncpu" -gt 4 ]; then
  pin_build=(taskset -c "0-$((ncpu - 3))") pin_py=(taskset -c "$((ncpu - 2))-$((ncpu - 1))")
fi
bench_py=(experiments/gpu/bench_kvpress_gpu.py)
[ "$quick" = 1 ] && bench_py+=(--quick)
kvp_pid=
if [ "$dry" != 1 ]; then
  (
    summary=$tmp/kvpress.summary  # appended to the summary after the build (two writers would interleave)
    step kvpress_e2e "$tmp/kvpress.log" 120 "${pin_py[@]}" "$python" "${bench_py[@]}" e2e --press knorm \
      --out "$out/e2e_kvpress.csv"
    step kvpress_press "$tmp/kvpress.log" 150 "${pin_py[@]}" "$python" "${bench_py[@]}" press --repeat 3 \
      --cell-budget-s 6 --presses experiments/gpu/presses.json --out "$out/kvpress_press.csv" --budget-s 130
  ) >/dev/null 2>&1 &
  kvp_pid=$!
fi
# What the device steps need: the CLI, kvf_bench_cuda, kvf_test_select and every test target with [gpu] cases.
targets=(kvforge kvf_bench_cuda kvf_test_select)
alltargets=$(ninja -C "$build" -t targets all 2>/dev/null)
for f in $(grep -l '\[gpu\]' tests/*.cpp tests/*/*.cpp 2>/dev/null); do
  t=$(grep -oE "CMakeFiles/[A-Za-z0-9_]+\.dir/$(basename "$f")\.o" <<<"$alltargets" | head -1 | sed -E 's|CMakeFiles/(.*)\.dir/.*|\1|')
  [ -n "$t" ] && [[ " ${targets[*]} " != *" $t "* ]] && targets+=("$t")
done
echo "build targets: ${targets[*]}" >>"$summary"
step build "$out/build.log" "$build_limit" "${pin_build[@]}" cmake --build "$build" -j "$jobs" --target "${targets[@]}"
build_rc=$?
[ $build_rc -eq 98 ] && build_rc=0  # not run (KVF_GPUCHECK_SKIP): the build dir of an earlier call
if [ -n "$kvp_pid" ]; then
  wait "$kvp_pid"
  cat "$tmp/kvpress.summary" >>"$summary"
  grep -qE "FAILED|SKIPPED" "$tmp/kvpress.summary" && status=1
  cat "$tmp/kvpress.log" >>"$steps"
  tail -4 "$out/e2e_kvpress.csv" 2>/dev/null | tee -a "$summary"
fi
if [ $build_rc -ne 0 ]; then
  grep -m5 -B2 -A10 "error" "$out/build.log" | tail -40
  finish
fi
kvforge=$build/experiments/kvforge

if [ "$dry" = 1 ]; then
  # The vendored build must not have compiled any system copy of what the GPU machine lacks (/usr/include is on
  # every compiler's path here, so a missing vendored header would silently fall back to it).
  leaks=$(ninja -C "$build" -t deps 2>/dev/null |
    grep -E '^ +/usr/(local/)?include/(eigen3|catch2|nlohmann|CLI|pcre2\.h|unicode|qt6|x86_64-linux-gnu/qt6)' | sort -u | head -5)
  if [ -n "$leaks" ]; then
    say "dry: FAILED, system headers compiled in (the GPU machine has none): $leaks"
    status=1
  else
    say "dry: no system Eigen/Catch2/json/CLI11/PCRE2/ICU/Qt header in the build (ninja -t deps)"
  fi
  "$kvforge" presses --json >"$tmp/presses.json" && "$python" -m json.tool "$tmp/presses.json" >/dev/null &&
    if ! cmp -s "$tmp/presses.json" experiments/gpu/presses.json; then
      cp "$tmp/presses.json" experiments/gpu/presses.json
      say "dry: experiments/gpu/presses.json refreshed from kvforge presses --json (commit it)"
    fi
  "$kvforge" bench speed-memory --help >"$tmp/sm_help.txt" 2>&1 && grep -q -- "--device" "$tmp/sm_help.txt" &&
    "$kvforge" bench-press --help 2>&1 | grep -q -- "--synthetic-seq" ||
    { say "dry: FAILED, kvforge lacks bench speed-memory --device or bench-press --synthetic-seq"; status=1; }
  PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} "$python" experiments/gpu/bench_kvpress_gpu.py selftest >>"$steps" 2>&1 ||
    { say "dry: FAILED, bench_kvpress_gpu.py selftest (steps.log)"; status=1; }
  say "dry run: built in $(($(date +%s) - t0)) s; no GPU step run"
  finish
fi

# ---- [gpu] tests: kvf_test_select (host) and each binary's [gpu] cases; a skipped GPU case is a failure here
: >"$out/tests.txt"
step test_select "$out/tests.txt" 60 "$build/tests/kvf_test_select"
for t in "${targets[@]}"; do
  case $t in kvf_test_select | kvforge | kvf_bench_cuda) continue ;; esac
  bin=$(find "$build" -type f -name "$t" -perm -u+x | head -1)
  [ -n "$bin" ] || { say "test $t: FAILED (binary not found)"; status=1; continue; }
  case $t in
    *cuda*) step "test $t (all cases)" "$out/tests.txt" 150 "$bin" -d yes ;;  # a CUDA-only test binary
    *) step "test $t [gpu]" "$out/tests.txt" 150 "$bin" "[gpu]" -d yes ;;
  esac
done
if grep -q "skipped:" "$out/tests.txt"; then
  say "tests: GPU cases SKIPPED on the GPU machine: $(grep -m3 'skipped:' "$out/tests.txt" | tr -s ' \n' ' ')"
  status=1
fi
grep -E "^(All tests passed|test cases:)" "$out/tests.txt" | tee -a "$summary"

# ---- kvf_bench_cuda: the token-local kernels alone (fp32), S = 4k, 32k, 128k
step bench_cuda "$steps" 45 "$build/experiments/gpu/kvf_bench_cuda"
sed -n '/^==== bench_cuda/,$p' "$steps" | grep -v '^====' | head -12 >>"$summary"

# ---- kvforge bench speed-memory --device cuda: llama-3.1-8b, bf16, random weights, 128k, ratio 0 then 0.5
sm_len=131072 sm_decode=32
[ "$quick" = 1 ] && sm_len=16384 sm_decode=8
# knorm (dense cache) at ratio 0 and 0.5, then adakv(knorm) at 0.5: a head-wise press, so a ragged cache that must
# hold half the memory and decodes through kernels/cuda/ragged_decode.cu.
for cell in "knorm 0" "knorm 0.5" "adakv(knorm) 0.5"; do
  set -- $cell
  step "speed_memory $1 ratio $2" "$steps" 90 "$kvforge" bench speed-memory --preset llama-3.1-8b --dtype bfloat16 \
    --device cuda --lengths "$sm_len" --ratios "$2" --press-spec "$1" --decode-tokens "$sm_decode" --repeats 1 \
    --out "$tmp/sm.csv" && { [ -s "$out/speed_memory.csv" ] && tail -n +2 "$tmp/sm.csv" || cat "$tmp/sm.csv"; } >>"$out/speed_memory.csv"
done
cat "$out/speed_memory.csv" 2>/dev/null >>"$summary"
# ---- kvforge bench-press --device cuda, every registered press (same specs as the kvpress rows)
press_budget=$(($(left) - 25))
[ "$press_budget" -gt 150 ] && press_budget=150
step kvforge_press "$steps" $((press_budget + 15)) "$python" "${bench_py[@]}" kvforge --kvforge "$kvforge" \
  --join "$out/kvpress_press.csv" --out "$out/kvforge_press.csv" --budget-s "$press_budget" --cell-timeout-s 15
sed -n '/^==== kvforge_press/,$p' "$steps" | grep -E '^(summary|median|press cells)' >>"$summary"

finish
}
