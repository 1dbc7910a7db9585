// Registry-driven CUDA checks (normal build only: they need kvf_kernels and kvf_core):
//  - coverage: which registered presses run natively on a CUDA cache (RuntimePress::has_device_executor) and which
//    fall back to host copies; runs without a GPU, so every build reports it;
//  - every registered press's example spec compressed on a CUDA cache (TypedPress's dispatch: CUDA executor or host
//    fallback) against the same press on the CPU cache, MHA and GQA, B = 1 and 2, ratios 0 .. 0.9, random and
//    adversarial layers (tests/press_support.hpp), tie-aware (cudatest::compare).
#include "tests/test_cuda_support.hpp"

#include <set>

#include "compose/spec.hpp"
#include "core/error.hpp"
#include "kernels/registry.hpp"
#include "tests/press_support.hpp"

using namespace kvf;
using namespace kvf::cudatest;

namespace {

// The presses whose every part has a device twin (kernels/cuda/cuda_executors.hpp); docs/cuda.md lists the same.
const std::set<std::string> kCudaPresses = {
    "knorm", "random", "streaming_llm", "snapkv", "tova", "observed_attention", "expected_attention", "keydiff",
    "adakv(knorm)", "adakv(snapkv)", "adakv(expected_attention)", "per_layer(knorm)", "pyramidkv",
    "key_rerotation(knorm)", "key_rerotation(streaming_llm)", "lagkv", "chunk(knorm)", "chunkkv(knorm)",
    "chunkkv(snapkv)", "block(knorm)", "block(keydiff)", "think(knorm)", "think(snapkv)"};

// The layer of `r` with every tensor a press reads on the GPU.
struct GpuLayer {
  LayerWeights weights;
  LayerView view;
  LayerCache cache;
  explicit GpuLayer(const test::RandomLayer& r) {
    auto g = [](const at::Tensor& t) { return t.defined() ? t.to(at::kCUDA) : t; };
    weights.q_proj = g(r.weights.q_proj);
    weights.q_bias = g(r.weights.q_bias);
    weights.q_norm = g(r.weights.q_norm);
    weights.o_proj = g(r.weights.o_proj);
    view = r.view;
    view.weights = &weights;
    view.hidden_states = g(r.view.hidden_states);
    view.position_ids = g(r.view.position_ids);
    view.cos = g(r.view.cos);
    view.sin = g(r.view.sin);
    view.inv_freq = g(r.view.inv_freq);
    view.attentions = g(r.view.attentions);
    cache.keys = g(r.cache.keys);
    cache.values = g(r.cache.values);
  }
};

}  // namespace

TEST_CASE("cuda registry: which registered presses have a CUDA executor", "[gpu][cuda]") {
  // No GPU needed: has_device_executor reads the composed type.
  std::string native, fallback;
  std::set<std::string> have;
  for (const auto& e : press_registry().entries()) {
    const auto press = press_registry().make(e.example, 0.5);
    const bool on_gpu = press->has_device_executor(at::Device(at::kCUDA, 0));
    (on_gpu ? native : fallback) += (on_gpu ? native : fallback).empty() ? e.shape : ", " + e.shape;
    if (on_gpu) have.insert(e.shape);
    CHECK(press->has_device_executor(at::Device(at::kCPU)));
  }
  WARN("CUDA executor (" << have.size() << "/" << press_registry().entries().size() << "): " << native);
  WARN("host fallback on a CUDA cache: " << fallback);
  CHECK(have == kCudaPresses);
}

TEST_CASE("cuda registry: every registered press on a CUDA cache matches the same press on the CPU", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  using A = test::LayerShape::Adversarial;
  for (const auto& e : press_registry().entries()) {
    const bool native = kCudaPresses.count(e.shape) > 0;
    Tolerance tol;
    tol.head_wise = e.shape.rfind("adakv", 0) == 0;
    tol.keys_exact = e.shape.rfind("key_rerotation", 0) != 0 && e.shape.rfind("think", 0) != 0;
    if (!native || e.shape == "lagkv") tol.exact_scores = true;  // host copies / lagkv: the CPU's floats
    if (const auto at = e.example.find("chunk_length="); e.shape.rfind("chunkkv", 0) == 0 && at != std::string::npos)
      tol.chunk_length = std::stoll(e.example.substr(at + 13));  // whole chunks per batch row
    for (const auto& [B, Hq, H] : {std::tuple{1, 4, 4}, std::tuple{2, 8, 2}})
      for (const int64_t S : {7, 64, 1000, 4096})
        for (const A adv : {A::None, A::Ties, A::SignedZeros, A::Inf}) {
          if (adv != A::None && S != 64) continue;
          const auto probe = press_registry().make(e.example, 0.5);
          if (probe->needs_attentions() && S > 1000) continue;
          test::LayerShape s;
          s.batch = B, s.q_heads = Hq, s.kv_heads = H, s.seq = S, s.head_dim = 16;
          s.attentions = probe->needs_attentions();
          s.adversarial = adv;
          s.seed = static_cast<uint64_t>(S + 7 * B);
          const test::RandomLayer cpu(s);
          const GpuLayer gpu(cpu);
          for (const double cr : {0.0, 0.25, 0.5, 0.9}) {
            INFO(e.example << (native ? " (CUDA executor)" : " (host fallback)") << " B=" << B << " Hq=" << Hq
                           << " H=" << H << " S=" << S << " adversarial=" << static_cast<int>(adv) << " cr=" << cr);
            const auto press = press_registry().make(e.example, cr);
            CompressResult want;
            try {
              want = press->compress(cpu.view, cpu.cache, Backend::Fused);
            } catch (const Error& err) {  // e.g. S <= window_size: the GPU path must refuse it the same way
              CHECK_THROWS_WITH(press->compress(gpu.view, gpu.cache, Backend::Fused), err.what());
              continue;
            }
            const CompressResult got = press->compress(gpu.view, gpu.cache, Backend::Fused);
            CHECK(got.keys.is_cuda());
            CHECK(got.values.is_cuda());
            CHECK((!got.scores.defined() || got.scores.is_cuda() || !native));
            CHECK(compare(host_result(got), host_result(want), S, s.head_dim, tol) == "");
          }
        }
  }
}
