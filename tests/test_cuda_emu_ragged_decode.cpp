// kernels/cuda/ragged_decode.cu on the CPU through kvf_cuda_emu (see tests/test_cuda_emu.cpp). Being written.
#include <catch2/catch.hpp>
