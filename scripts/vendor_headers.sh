#!/usr/bin/env sh
# Copies the dependencies that the GPU machine's image lacks into .vendor/ (git-ignored), for the KVF_VENDORED=ON
# build (cmake/dependencies.cmake) that experiments/gpu/device_check.sh makes there (docs/cuda.md, "The GPU check"):
#   eigen3/Eigen/...            Eigen 3 headers                         (Debian: libeigen3-dev)
#   catch2/catch2/catch.hpp     Catch2 v2 single header                 (catch2)
#   catch2/cmake/Catch*.cmake   catch_discover_tests                    (catch2)
#   nlohmann_json/nlohmann/...  nlohmann-json headers                   (nlohmann-json3-dev)
#   cli11/CLI/...               CLI11 headers                           (libcli11-dev)
#   pcre2/include/pcre2.h, pcre2/lib/libpcre2-8.a   PCRE2, static       (libpcre2-dev)
# Run on a machine that has those packages (this project's Debian 12 machines do: scripts/setup.sh installs them).
# About 9 MB. ICU is not vendored: that build uses KVF_ICU=OFF.
#   scripts/vendor_headers.sh [include_dir (/usr/include)] [lib_dir (/usr/lib/x86_64-linux-gnu)] [cmake_dir (/usr/lib/cmake)]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
inc=${1:-/usr/include}
lib=${2:-/usr/lib/x86_64-linux-gnu}
cmakedir=${3:-/usr/lib/cmake}
need() {  # need PATH PACKAGE
  [ -e "$1" ] || { echo "vendor_headers: $1 is missing (apt-get install $2)" >&2; exit 1; }
}
need "$inc/eigen3/Eigen/Core" libeigen3-dev
need "$inc/catch2/catch.hpp" catch2
need "$cmakedir/Catch2/Catch.cmake" catch2
need "$cmakedir/Catch2/CatchAddTests.cmake" catch2
need "$inc/nlohmann/json.hpp" nlohmann-json3-dev
need "$inc/CLI/CLI.hpp" libcli11-dev
need "$inc/pcre2.h" libpcre2-dev
need "$lib/libpcre2-8.a" libpcre2-dev
v="$root/.vendor"
rm -rf "$v"
mkdir -p "$v/eigen3" "$v/catch2/catch2" "$v/catch2/cmake" "$v/nlohmann_json" "$v/cli11" "$v/pcre2/include" "$v/pcre2/lib"
cp -R "$inc/eigen3/Eigen" "$v/eigen3/"
cp "$inc/catch2/catch.hpp" "$v/catch2/catch2/"
cp "$cmakedir/Catch2/Catch.cmake" "$cmakedir/Catch2/CatchAddTests.cmake" "$v/catch2/cmake/"
cp -R "$inc/nlohmann" "$v/nlohmann_json/"
cp -R "$inc/CLI" "$v/cli11/"
cp "$inc/pcre2.h" "$v/pcre2/include/"
cp "$lib/libpcre2-8.a" "$v/pcre2/lib/"
if command -v dpkg-query >/dev/null 2>&1; then
  dpkg-query -W -f '${Package} ${Version}\n' libeigen3-dev catch2 nlohmann-json3-dev libcli11-dev libpcre2-dev \
    >"$v/VERSIONS" 2>/dev/null || true
fi
echo "vendor_headers: $(du -sh "$v" | cut -f1) in $v (from $inc, $lib, $cmakedir)"
