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
head -c 4 "$out/export_overview.pdf" | grep -q '%PDF' || { echo "FAIL: export_overview.pdf is not a PDF"; exit 1; }
# SVG: written when kvviz was built with Qt SVG (setup installs qt6-svg-dev); otherwise it must refuse clearly.
if "$kvviz" --export "$out/export_overview.svg" --view overview "$a" 2> "$out/svg.err"; then
  grep -q '<svg' "$out/export_overview.svg" || { echo "FAIL: export_overview.svg has no <svg> element"; exit 1; }
  grep -c '<image\|<path\|<rect' "$out/export_overview.svg" | awk '$1 < 1 { print "FAIL: empty SVG"; exit 1 }'
  echo "svg ok"
else
  grep -qi 'svg' "$out/svg.err" || { echo "FAIL: SVG export failed without saying why"; cat "$out/svg.err"; exit 1; }
  echo "skipped SVG check: $(cat "$out/svg.err")"
fi
