#pragma once
// Helpers of the CUDA test suites (test_cuda_executors.cpp, test_cuda_registry.cpp): the GPU skip, random layer
// inputs as PressInputs (no kvf_core needed), host copies of results and a tie-aware comparison that works at
// S = 131072 (host vectors, one merge per head).
#include <ATen/ATen.h>
#undef CHECK  // c10's glog-style CHECK: the CHECKs of the suites are Catch's
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "kernels/cpu/executor.hpp"
#include "kernels/cuda/device_info.hpp"
#include "kernels/press_inputs.hpp"
#include "kernels/runtime_press.hpp"

#define KVF_SKIP_WITHOUT_GPU()                       \
  do {                                               \
    if (kvf::cuda::device_count() == 0) {            \
      WARN("skipped: " << kvf::cuda::no_device_reason()); \
      return;                                        \
    }                                                \
  } while (0)

namespace kvf::cudatest {

enum class Inputs { Random, Ties, SignedZeros, Inf };

// A layer as PressInputs on the host and the same tensors on the GPU. Keys/values/hidden states are N(0, 1) (Ties:
// rounded to 0.5 steps; SignedZeros: every 3rd key/value row +-0; Inf: every 7th key has one +-inf channel);
// cos/sin are real RoPE tables of positions 0 .. S-1; attentions (when asked) causal softmax rows of random logits.
struct TestLayer {
  std::unique_ptr<ModelConfig> config = std::make_unique<ModelConfig>();
  PressInputs host, gpu;

  TestLayer(int64_t B, int64_t Hq, int64_t H, int64_t S, int64_t d, uint64_t seed, bool attentions,
            Inputs kind = Inputs::Random, int64_t layer = 1, int64_t num_layers = 4) {
    at::manual_seed(seed);
    const int64_t hidden = 32;
    config->num_attention_heads = Hq;
    config->num_key_value_heads = H;
    config->head_dim = d;
    config->hidden_size = hidden;
    config->num_hidden_layers = num_layers;
    config->rms_norm_eps = 1e-6;
    PressInputs& p = host;
    p.config = config.get();
    p.layer = layer;
    p.hidden_states = at::randn({B, S, hidden});
    p.keys = at::randn({B, H, S, d});
    p.values = at::randn({B, H, S, d});
    if (kind == Inputs::Ties) {
      p.keys = (p.keys * 2).round() / 2;
      p.values = (p.values * 2).round() / 2;
      p.hidden_states = (p.hidden_states * 2).round() / 2;
    } else if (kind == Inputs::SignedZeros) {
      for (int64_t t = 0; t < S; t += 3) {
        p.keys.select(2, t).fill_(t % 2 ? -0.0 : 0.0);
        p.values.select(2, t).fill_(t % 2 ? 0.0 : -0.0);
      }
    } else if (kind == Inputs::Inf) {
      for (int64_t t = 1; t < S; t += 7) p.keys.select(2, t).select(2, t % d).fill_(t % 2 ? INFINITY : -INFINITY);
    }
    const int64_t half = d / 2;
    p.inv_freq = at::pow(10000.0, -at::arange(half, at::kFloat) * 2.0 / static_cast<double>(d)).to(at::kFloat);
    const at::Tensor f = at::arange(S, at::kFloat).view({S, 1}) * p.inv_freq.view({1, half});
    const at::Tensor emb = at::cat({f, f}, -1);
    at::Tensor cs = emb.cos(), sn = emb.sin();
    if (d % 2) cs = at::cat({cs, at::ones({S, 1})}, -1), sn = at::cat({sn, at::zeros({S, 1})}, -1);
    p.cos = cs.unsqueeze(0).expand({B, S, d}).contiguous();
    p.sin = sn.unsqueeze(0).expand({B, S, d}).contiguous();
    p.q_proj = at::randn({Hq * d, hidden}) / std::sqrt(static_cast<double>(hidden));
    p.o_proj = at::randn({hidden, Hq * d}) / std::sqrt(static_cast<double>(hidden));
    if (attentions) {
      const at::Tensor logits = at::randn({B, Hq, S, S});
      const at::Tensor mask = at::ones({S, S}, at::kBool).triu(1);
      p.attentions = at::softmax(logits.masked_fill(mask, -INFINITY), -1).contiguous();
    }
    p.cache_dtype = at::kFloat;
    if (cuda::device_count() == 0) return;
    gpu = host;
    for (at::Tensor* t : {&gpu.hidden_states, &gpu.keys, &gpu.values, &gpu.cos, &gpu.sin, &gpu.inv_freq, &gpu.q_proj,
                          &gpu.o_proj, &gpu.attentions})
      if (t->defined()) *t = t->to(at::kCUDA).contiguous();
  }
};

// A result with everything on the host.
struct HostResult {
  bool has_scores = false;
  std::vector<float> scores;
  KeptSets kept;
  std::vector<float> keys, values;
};

inline std::vector<float> floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
inline HostResult host_result(const CompressResult& r) {
  HostResult h;
  h.has_scores = r.scores.defined();
  if (h.has_scores) h.scores = floats(r.scores);
  h.kept = r.kept;
  h.keys = floats(r.keys);
  h.values = floats(r.values);
  return h;
}
inline HostResult host_result(PressOutput&& o) {
  HostResult h;
  h.has_scores = !o.scores.empty();
  h.scores = std::move(o.scores);
  h.kept = std::move(o.kept);
  h.keys = std::move(o.keys);
  h.values = std::move(o.values);
  return h;
}

struct Tolerance {
  double score_rtol = 1e-4, score_atol = 1e-6;
  bool exact_scores = false;  // bitwise-equal scores required (streaming_llm, random)
  bool head_wise = false;     // counts may move between the heads of a batch row (adakv)
  bool keys_exact = true;     // false after key_rerotation (device cosf/sinf): close where the head's set agrees
  int64_t chunk_length = 0;   // chunkkv: kept sets compared per batch row as chunk sets, swaps judged by chunk means
};

inline bool close(double a, double b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (a == b) return true;
  return std::abs(a - b) <= atol + rtol * std::abs(b);
}

// chunkkv's chunk score on the host: the mean over chunk j's positions of the head-summed scores (ChunkKV::run).
inline double chunk_mean(const std::vector<float>& scores, int64_t H, int64_t S, int64_t C, int64_t b, int64_t j) {
  const int64_t t0 = j * C, t1 = std::min(t0 + C, S);
  double acc = 0.0;
  for (int64_t t = t0; t < t1; ++t) {
    float hs = 0.f;
    for (int64_t h = 0; h < H; ++h) hs += scores[static_cast<size_t>((b * H + h) * S + t)];
    acc += hs;
  }
  return acc / static_cast<double>(t1 - t0);
}

// chunkkv (S >= chunk_length): every head of a batch row keeps the same whole chunks; the chunks kept on one side
// only must have near-equal chunk means (computed from the CPU's scores). "" when they agree.
inline std::string compare_chunks(const HostResult& got, const HostResult& want, int64_t S, const Tolerance& tol) {
  const int64_t C = tol.chunk_length, H = want.kept.heads;
  for (int64_t b = 0; b < want.kept.batch; ++b) {
    auto chunks_of = [&](const KeptSets& k, std::vector<int64_t>& out) -> std::string {
      const int32_t* p0 = k.begin(b, 0);
      const int64_t n0 = k.count(b, 0);
      for (int64_t h = 1; h < H; ++h)
        if (k.count(b, h) != n0 || !std::equal(p0, p0 + n0, k.begin(b, h)))
          return "heads of batch row " + std::to_string(b) + " keep different positions";
      for (int64_t i = 0; i < n0; ++i) {
        const int64_t j = p0[i] / C;
        if (out.empty() || out.back() != j) out.push_back(j);
      }
      for (int64_t j : out) {  // whole chunks only
        const int64_t len = std::min(j * C + C, S) - j * C;
        if (std::count_if(p0, p0 + n0, [&](int32_t t) { return t / C == j; }) != len)
          return "a partially kept chunk in batch row " + std::to_string(b);
      }
      return "";
    };
    std::vector<int64_t> cg, cw, og, ow;
    if (std::string e = chunks_of(got.kept, cg); !e.empty()) return "gpu: " + e;
    if (std::string e = chunks_of(want.kept, cw); !e.empty()) return "cpu: " + e;
    if (cg.size() != cw.size()) return "batch row " + std::to_string(b) + " keeps a different number of chunks";
    std::set_difference(cg.begin(), cg.end(), cw.begin(), cw.end(), std::back_inserter(og));
    std::set_difference(cw.begin(), cw.end(), cg.begin(), cg.end(), std::back_inserter(ow));
    std::vector<double> sg, sw;
    for (int64_t j : og) sg.push_back(chunk_mean(want.scores, H, S, C, b, j));
    for (int64_t j : ow) sw.push_back(chunk_mean(want.scores, H, S, C, b, j));
    std::sort(sg.begin(), sg.end());
    std::sort(sw.begin(), sw.end());
    for (size_t i = 0; i < sg.size(); ++i)
      if (!close(sg[i], sw[i], tol.score_rtol, tol.score_atol))
        return "batch row " + std::to_string(b) + " keeps different chunks beyond ties: gpu-only mean " +
               std::to_string(sg[i]) + " vs cpu-only mean " + std::to_string(sw[i]);
  }
  return "";
}

// "" when `got` (GPU) agrees with `want` (CPU executor): scores within tolerance (or bitwise), kept sets equal up to
// swaps of near-equal scores (per head; per batch row for head-wise selectors), kept V rows bitwise equal and K rows
// equal (or close after re-rotation) where the positions agree. Safeguarded scores (FLT_MAX, adakv) may sit on
// different positions of near-equal scores: those slots compare by the other side's value.
inline std::string compare(const HostResult& got, const HostResult& want, int64_t S, int64_t d, const Tolerance& tol) {
  std::ostringstream err;
  if (got.has_scores != want.has_scores) return "scores defined on one side only";
  const bool scored = want.has_scores;
  if (scored) {
    if (got.scores.size() != want.scores.size()) return "score counts differ";
    if (tol.exact_scores) {
      if (std::memcmp(got.scores.data(), want.scores.data(), want.scores.size() * sizeof(float)) != 0)
        return "scores are not bitwise equal";
    } else {
      int64_t bad = 0, first = -1;
      for (size_t i = 0; i < want.scores.size(); ++i) {
        const float g = got.scores[i], w = want.scores[i];
        if ((g == FLT_MAX) != (w == FLT_MAX)) continue;  // safeguard slot (checked through the kept sets)
        if (!close(g, w, tol.score_rtol, tol.score_atol) && !bad++) first = static_cast<int64_t>(i);
      }
      if (bad) {
        err << bad << " scores differ; first at flat index " << first << ": gpu " << got.scores[first] << ", cpu "
            << want.scores[first];
        return err.str();
      }
    }
  }
  const KeptSets &G = got.kept, &W = want.kept;
  if (G.batch != W.batch || G.heads != W.heads || G.offsets.size() != W.offsets.size())
    return "kept sets have different (batch, heads)";
  const bool by_chunks = tol.chunk_length > 0 && S >= tol.chunk_length && scored;
  if (by_chunks)
    if (std::string e = compare_chunks(got, want, S, tol); !e.empty()) return e;
  if (G.total() * d != static_cast<int64_t>(got.keys.size()) || G.total() * d != static_cast<int64_t>(got.values.size()))
    return "gpu keys/values do not hold kept.total() rows";
  auto score_of = [&](int64_t b, int64_t flat) -> double {  // flat = h * S + t within batch row b
    const size_t i = static_cast<size_t>(b * W.heads * S + flat);
    const float w = want.scores[i], g = got.scores[i];
    return w != FLT_MAX ? w : (g != FLT_MAX ? g : FLT_MAX);
  };
  for (int64_t b = 0; b < W.batch; ++b) {
    std::vector<int64_t> only_g, only_w;
    int64_t total_g = 0, total_w = 0;
    auto check_group = [&](const char* what, int64_t h) -> std::string {
      if (total_g != total_w) {
        std::ostringstream e;
        e << what << " (b=" << b << ", h=" << h << ") keeps " << total_g << " gpu vs " << total_w << " cpu";
        return e.str();
      }
      if (only_g.empty()) return "";
      if (!scored) return "kept sets differ and nothing was scored";
      std::vector<double> sg, sw;
      for (int64_t f : only_g) sg.push_back(score_of(b, f));
      for (int64_t f : only_w) sw.push_back(score_of(b, f));
      std::sort(sg.begin(), sg.end());
      std::sort(sw.begin(), sw.end());
      for (size_t i = 0; i < sg.size(); ++i)
        if (!close(sg[i], sw[i], tol.score_rtol, tol.score_atol)) {
          std::ostringstream e;
          e << what << " (b=" << b << ", h=" << h << ") kept sets differ beyond ties: gpu-only score " << sg[i]
            << " vs cpu-only score " << sw[i] << " (" << only_g.size() << " swapped)";
          return e.str();
        }
      return "";
    };
    for (int64_t h = 0; h < W.heads; ++h) {
      const int32_t *gp = G.begin(b, h), *wp = W.begin(b, h);
      const int64_t ng = G.count(b, h), nw = W.count(b, h);
      for (int64_t i = 0; i < ng; ++i)
        if (gp[i] < 0 || gp[i] >= S || (i > 0 && gp[i] <= gp[i - 1])) return "gpu kept positions out of range or not ascending";
      std::vector<int32_t> og, ow;
      std::set_difference(gp, gp + ng, wp, wp + nw, std::back_inserter(og));
      std::set_difference(wp, wp + nw, gp, gp + ng, std::back_inserter(ow));
      for (int32_t t : og) only_g.push_back(h * S + t);
      for (int32_t t : ow) only_w.push_back(h * S + t);
      total_g += ng;
      total_w += nw;
      if (by_chunks) {
        only_g.clear(), only_w.clear(), total_g = total_w = 0;  // judged by compare_chunks
      } else if (!tol.head_wise) {
        if (std::string e = check_group("head", h); !e.empty()) return e;
        only_g.clear(), only_w.clear(), total_g = total_w = 0;
      }
      // Rows at common positions.
      const bool same_set = og.empty() && ow.empty();
      const int64_t go = G.offsets[b * G.heads + h], wo = W.offsets[b * W.heads + h];
      for (int64_t i = 0, j = 0; i < ng && j < nw;) {
        if (gp[i] < wp[j]) { ++i; continue; }
        if (gp[i] > wp[j]) { ++j; continue; }
        const float* gk = got.keys.data() + (go + i) * d;
        const float* wk = want.keys.data() + (wo + j) * d;
        if (std::memcmp(got.values.data() + (go + i) * d, want.values.data() + (wo + j) * d, d * sizeof(float)))
          return "kept value rows differ (b=" + std::to_string(b) + ", h=" + std::to_string(h) + ", t=" +
                 std::to_string(gp[i]) + ")";
        if (tol.keys_exact) {
          if (std::memcmp(gk, wk, d * sizeof(float)))
            return "kept key rows differ (b=" + std::to_string(b) + ", h=" + std::to_string(h) + ")";
        } else if (same_set) {
          for (int64_t c = 0; c < d; ++c)
            if (!close(gk[c], wk[c], 2e-5, 2e-5 * std::max(1.f, std::abs(wk[c]))))
              return "re-rotated key rows differ beyond rounding (b=" + std::to_string(b) + ", h=" + std::to_string(h) +
                     ", t=" + std::to_string(gp[i]) + "): gpu " + std::to_string(gk[c]) + " cpu " + std::to_string(wk[c]);
        }
        ++i, ++j;
      }
    }
    if (tol.head_wise && !by_chunks)
      if (std::string e = check_group("batch row", -1); !e.empty()) return e;
  }
  return "";
}

}  // namespace kvf::cudatest
