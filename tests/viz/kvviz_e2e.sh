#!/usr/bin/env bash
# kvviz_e2e.sh KVVIZ PYTHON TRACE OUT_DIR: starts the real kvviz under Xvfb on a trace written by
# `kvforge trace` on SmolLM2, grabs the window, and checks that the screenshot is not blank and shows one map
# per layer (kvviz's own count and a pixel scan of the screenshot).
set -euo pipefail
kvviz=$1; py=$2; trace=$3; out=$4
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
layers=$("$py" -c "import sys; from safetensors.numpy import load_file; print(load_file(sys.argv[1])['kept'].shape[0])" "$trace")
echo "trace $trace: $layers layers"
rm -f "$out/kvviz_window.png"
log=$(xvfb-run -a -s "-screen 0 1400x1000x24" env QT_QPA_PLATFORM=xcb "$kvviz" --screenshot "$out/kvviz_window.png" "$trace" 2>&1)
echo "$log"
echo "$log" | grep -q "overview drew $layers layer maps" || { echo "FAIL: kvviz did not draw $layers layer maps"; exit 1; }
"$py" "$here/check_png.py" "$out/kvviz_window.png" --layers "$layers"
