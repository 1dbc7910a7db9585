# KVF_GPU_CHECK_ONLY: the build experiments/gpu/device_check.sh makes on the GPU machine, whose image has CUDA,
# CMake, ninja and torch but none of the apt packages: Eigen and Catch2 come from the system when present, else
# from .vendor/ (scripts/vendor_headers.sh copies them there). Builds kvf_cuda, kvf_cuda_torch, kvf_test_select,
# kvf_test_cuda and kvf_bench_cuda; nothing that needs the parsers, the runtime or Qt.
set(KVF_VENDOR_DIR "${PROJECT_SOURCE_DIR}/.vendor" CACHE PATH "Header-only dependencies (scripts/vendor_headers.sh)")

find_package(Eigen3 3.3 QUIET NO_MODULE)
if(NOT TARGET Eigen3::Eigen)
  if(NOT EXISTS "${KVF_VENDOR_DIR}/eigen3/Eigen/Core")
    message(FATAL_ERROR "Eigen not found: run scripts/vendor_headers.sh (fills ${KVF_VENDOR_DIR}) or install it")
  endif()
  add_library(Eigen3::Eigen INTERFACE IMPORTED)
  set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${KVF_VENDOR_DIR}/eigen3")
endif()

find_package(Catch2 2 QUIET)
if(NOT TARGET Catch2::Catch2)
  if(NOT EXISTS "${KVF_VENDOR_DIR}/catch2/catch2/catch.hpp")
    message(FATAL_ERROR "Catch2 v2 not found: run scripts/vendor_headers.sh (fills ${KVF_VENDOR_DIR}) or install it")
  endif()
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${KVF_VENDOR_DIR}/catch2")
endif()

enable_testing()
add_subdirectory(kernels)
add_subdirectory(experiments/gpu)
add_subdirectory(tests)
message(STATUS "kvforge: KVF_GPU_CHECK_ONLY build (kvf_cuda, kvf_cuda_torch, kvf_test_select, kvf_test_cuda, kvf_bench_cuda)")
