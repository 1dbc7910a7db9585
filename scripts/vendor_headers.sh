#!/usr/bin/env sh
# Copies the header-only dependencies of the KVF_GPU_CHECK_ONLY build (Eigen, Catch2 v2's single header) from this
# machine's system include dirs into .vendor/ (git-ignored), for a machine that has none of them: the GPU machine
# carries .vendor along (experiments/gpu/device_check.sh, docs/cuda.md). About 7.5 MB.
#   scripts/vendor_headers.sh [eigen_include_dir] [catch2_include_dir]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
eigen=${1:-/usr/include/eigen3}
catch=${2:-/usr/include}
[ -f "$eigen/Eigen/Core" ] || { echo "vendor_headers: no Eigen at $eigen (apt-get install libeigen3-dev)" >&2; exit 1; }
[ -f "$catch/catch2/catch.hpp" ] || { echo "vendor_headers: no catch2/catch.hpp under $catch (apt-get install catch2)" >&2; exit 1; }
rm -rf "$root/.vendor"
mkdir -p "$root/.vendor/eigen3" "$root/.vendor/catch2/catch2"
cp -R "$eigen/Eigen" "$root/.vendor/eigen3/"
cp "$catch/catch2/catch.hpp" "$root/.vendor/catch2/catch2/"
echo "vendor_headers: $(du -sh "$root/.vendor" | cut -f1) in $root/.vendor (Eigen from $eigen, Catch2 from $catch)"
