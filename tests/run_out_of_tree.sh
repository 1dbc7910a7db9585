#!/bin/sh
# Configures, builds and runs an out-of-tree project that uses kvforge through find_package (examples/out_of_tree).
#   run_out_of_tree.sh SOURCE_DIR BINARY_DIR EXECUTABLE [cmake configure arguments: -G, -Dkvforge_DIR=..., ...]
# The binary dir is kept between runs: rebuilds are incremental, and a rebuilt kvforge library relinks the example.
set -eu
src=$1 bin=$2 exe=$3
shift 3
cmake -S "$src" -B "$bin" "$@"
cmake --build "$bin"
"$bin/$exe"
