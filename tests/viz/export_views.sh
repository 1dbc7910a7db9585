#!/usr/bin/env bash
# export_views.sh KVVIZ PYTHON OUT_DIR TRACE TRACE2: headless `kvviz --export` of every view (no display
# needed); each PNG must be a non-blank image.
set -euo pipefail
kvviz=$1; py=$2; out=$3; a=$4; b=$5
here=$(cd "$(dirname "$0")" && pwd)
for v in overview layer:5 text stats compare; do
  png="$out/export_${v/:/_}.png"
  "$kvviz" --export "$png" --view "$v" "$a" "$b"
  if [ "$v" = text ]; then maps=; else maps=--maps; fi
  "$py" "$here/check_png.py" "$png" $maps
done
"$kvviz" --export "$out/export_overview.pdf" --view overview "$a"
test -s "$out/export_overview.pdf"
