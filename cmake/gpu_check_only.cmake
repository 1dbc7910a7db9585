# KVF_GPU_CHECK_ONLY: the build experiments/gpu/device_check.sh makes on the GPU machine, whose image has CUDA,
# CMake, ninja and torch but none of the apt packages: Eigen and Catch2 come from the system when present, else
# from .vendor/ (scripts/vendor_headers.sh copies them there). Builds kvf_cuda, kvf_cuda_torch, kvf_test_select,
# kvf_test_cuda and kvf_bench_cuda; nothing that needs the parsers, the runtime or Qt.
set(KVF_VENDOR_DIR "${PROJECT_SOURCE_DIR}/.vendor" CACHE PATH "Header-only dependencies (scripts/vendor_headers.sh)")

# A header-only dependency: the system package's target when find_package made one, else the vendored copy.
function(kvf_vendored_headers target include_subdir probe_header)
  if(TARGET ${target})
    return()
  endif()
  if(NOT EXISTS "${KVF_VENDOR_DIR}/${include_subdir}/${probe_header}")
    message(FATAL_ERROR "${target} not found: run scripts/vendor_headers.sh (fills ${KVF_VENDOR_DIR}) or install it")
  endif()
  add_library(${target} INTERFACE IMPORTED)
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${KVF_VENDOR_DIR}/${include_subdir}")
endfunction()

find_package(Eigen3 3.3 QUIET NO_MODULE)
kvf_vendored_headers(Eigen3::Eigen eigen3 Eigen/Core)
find_package(Catch2 2 QUIET)
kvf_vendored_headers(Catch2::Catch2 catch2 catch2/catch.hpp)

enable_testing()
add_subdirectory(kernels)
add_subdirectory(experiments/gpu)
add_subdirectory(tests)
message(STATUS "kvforge: KVF_GPU_CHECK_ONLY build (kvf_cuda, kvf_cuda_torch, kvf_test_select, kvf_test_cuda, kvf_bench_cuda)")
