// Times the CUDA compression step of the token-local presses (kernels/cuda/token_local.cuh) and its top-n selection
// alone, B=1, 8 kv heads, d=128, float32, ratio 0.5, for S = 4k, 32k, 128k (or the S given as arguments).
// Prints one CSV row per case: the mean of 20 timed runs after 3 warm-ups (CUDA events), the bytes the step must
// move at least, and that as GB/s and as a fraction of the H200's 4.8 TB/s HBM bandwidth.
//   kvf_bench_cuda [S ...]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/select_topn.cuh"
#include "kernels/cuda/token_local.cuh"

namespace {

constexpr double kHbmBytesPerSecond = 4.8e12;  // H200 HBM3e peak
constexpr int kWarmup = 3, kTimed = 20;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "kvf_bench_cuda: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

__global__ void fill_kernel(float* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    x[i] = static_cast<float>(h) * (2.f / 4294967296.f) - 1.f;
  }
}

template <class F>
double time_ms(F&& step, cudaStream_t stream) {
  for (int i = 0; i < kWarmup; ++i) check(step(), "warm-up");
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  check(cudaEventRecord(a, stream), "record");
  for (int i = 0; i < kTimed; ++i) check(step(), "timed run");
  check(cudaEventRecord(b, stream), "record");
  check(cudaEventSynchronize(b), "synchronize");
  float ms = 0.f;
  check(cudaEventElapsedTime(&ms, a, b), "elapsed");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / kTimed;
}

void row(const char* what, int64_t S, int64_t n, double ms, double bytes) {
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf("%s,%lld,%lld,%.4f,%.0f,%.1f,%.3f\n", what, static_cast<long long>(S), static_cast<long long>(n), ms,
              bytes, gbs, gbs * 1e9 / kHbmBytesPerSecond);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kvf::cuda;
  if (device_count() == 0) {
    std::fprintf(stderr, "kvf_bench_cuda: no GPU (%s)\n", no_device_reason().c_str());
    return 2;
  }
  std::vector<int64_t> seqs = {4096, 32768, 131072};
  if (argc > 1) {
    seqs.clear();
    for (int i = 1; i < argc; ++i) seqs.push_back(std::atoll(argv[i]));
  }
  const int64_t B = 1, H = 8, d = 128;
  const double cr = 0.5;
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("# %s, B=%lld H=%lld d=%lld fp32 ratio=%.2f, mean of %d runs\n", prop.name, static_cast<long long>(B),
              static_cast<long long>(H), static_cast<long long>(d), cr, kTimed);
  std::printf("step,S,n,ms,min_bytes,GB_per_s,fraction_of_4.8TB_per_s\n");
  for (const int64_t S : seqs) {
    const int64_t heads = B * H, n = token_local_kept(S, cr), elems = heads * S * d;
    float *K, *V, *scores, *Ko, *Vo;
    int32_t* pos;
    void* ws = nullptr;
    check(cudaMalloc(&K, elems * sizeof(float)), "malloc");
    check(cudaMalloc(&V, elems * sizeof(float)), "malloc");
    check(cudaMalloc(&scores, heads * S * sizeof(float)), "malloc");
    check(cudaMalloc(&Ko, heads * n * d * sizeof(float)), "malloc");
    check(cudaMalloc(&Vo, heads * n * d * sizeof(float)), "malloc");
    check(cudaMalloc(&pos, heads * n * sizeof(int32_t)), "malloc");
    const TokenLocalLayer layer{K, V, B, H, S, d};
    const size_t ws_bytes = token_local_workspace_bytes(layer);
    if (ws_bytes) check(cudaMalloc(&ws, ws_bytes), "malloc");
    fill_kernel<<<1024, 256, 0, stream>>>(K, elems, 1u);
    fill_kernel<<<1024, 256, 0, stream>>>(V, elems, 2u);
    const TokenLocalOutput out{scores, pos, Ko, Vo};
    const double gather_bytes = 4.0 * static_cast<double>(heads * n * d) * sizeof(float);  // read + write K and V
    const double knorm_ms = time_ms(
        [&] { return run_token_local(layer, {TokenScorer::Knorm, cr, 4}, out, ws, ws_bytes, stream); }, stream);
    row("knorm", S, n, knorm_ms, static_cast<double>(elems) * sizeof(float) + gather_bytes);
    const double sl_ms = time_ms(
        [&] { return run_token_local(layer, {TokenScorer::StreamingLLM, cr, 4}, out, ws, ws_bytes, stream); }, stream);
    row("streaming_llm", S, n, sl_ms, gather_bytes);
    // The selection alone, on knorm's scores (one read of the scores, one write of the positions at least).
    check(run_token_local(layer, {TokenScorer::Knorm, cr, 4}, out, ws, ws_bytes, stream), "knorm scores");
    const double sel_ms = time_ms(
        [&] { return select_topn(scores, heads, S, n, pos, ws, ws_bytes, stream); }, stream);
    row("select_topn", S, n, sel_ms, static_cast<double>(heads) * (S * sizeof(float) + n * sizeof(int32_t)));
    for (void* p : {static_cast<void*>(K), static_cast<void*>(V), static_cast<void*>(scores), static_cast<void*>(Ko),
                    static_cast<void*>(Vo), static_cast<void*>(pos), ws})
      cudaFree(p);
  }
  check(cudaStreamSynchronize(stream), "final synchronize");
  return 0;
}
