#pragma once
// TypedPress<P>: RuntimePress for one composed press type, and PressRegistry::add<P>.
// Include this only in the registry translation units (it instantiates the executors).
#include <ATen/ATen.h>

#include <algorithm>
#include <tuple>
#include <utility>

#include "compose/params.hpp"
#include "core/error.hpp"
#include "kernels/build_config.hpp"
#include "kernels/cpu/executor.hpp"
#include "kernels/press_inputs.hpp"
#include "kernels/query_statistics.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/registry.hpp"
#if KVF_HAVE_CUDA
#include "kernels/cuda/cuda_executors.hpp"
#endif

namespace kvf {

template <class P>
class TypedPress;

template <class Sc, class Se, class Gr, class... Po>
class TypedPress<Press<Sc, Se, Gr, Po...>> final : public RuntimePress {
 public:
  using PressT = Press<Sc, Se, Gr, Po...>;
  using Params = typename PressT::Params;

  TypedPress(const SpecNode& spec, double cr) {
    if (!(cr >= 0.0 && cr < 1.0))
      throw Error("compression_ratio must be in [0, 1) (the fraction of the cache removed), got " + std::to_string(cr));
    params_.compression_ratio = cr;
    bind(spec);
    spec_ = spec.to_string();
  }

  std::string spec() const override { return spec_; }
  double compression_ratio() const override { return params_.compression_ratio; }
  bool needs_attentions() const override { return Sc::needs_attentions; }
  bool rerotates_positions() const override { return parse_spec(spec_).name == "key_rerotation"; }
  bool rewrites_rows() const override { return sizeof...(Po) > 0; }
  const Params& params() const { return params_; }

  // Where each backend runs: a CPU cache on the host; a CUDA cache through the press's CUDA executor (Fused, when
  // it has one) or else on host copies, with the result moved back to the cache's device.
  bool has_device_executor(const at::Device& device) const override {
#if KVF_HAVE_CUDA
    if (device.is_cuda()) return cuda::CudaExecutor<PressT>::available;
#endif
    return device.is_cpu();
  }

  CompressResult compress(const LayerView& view, const LayerCache& cache, Backend backend,
                          Rows rows = Rows::Write) const override {
    CompressResult r = compress_rows(view, cache, backend, rows == Rows::SkipUnchanged && !rewrites_rows());
    if (rows == Rows::SkipUnchanged && !rewrites_rows()) r.keys = r.values = at::Tensor();  // every backend alike
    return r;
  }

 private:
  CompressResult compress_rows(const LayerView& view, const LayerCache& cache, Backend backend, bool skip_rows) const {
    PressInputs in = make_press_inputs(view, cache);
    {
      LayerInputs raw = in.raw();  // both backends (and devices) reject bad input the same way (shapes and
                                   // presence only: on a GPU cache these are device pointers)
      raw.compression_ratio = params_.compression_ratio;
      Sc::validate(params_.scorer, raw);
    }
    if (in.keys.is_cpu()) return compress_host(in, backend, skip_rows);
#if KVF_HAVE_CUDA
    if constexpr (cuda::CudaExecutor<PressT>::available) {
      if (backend == Backend::Fused && in.keys.is_cuda()) {
        in.compression_ratio = params_.compression_ratio;
        return cuda::CudaExecutor<PressT>::run(params_, in);
      }
    }
#endif
    return result_to(compress_host(inputs_to_host(in), backend, skip_rows), in.keys.device());
  }

  // Both backends on host (CPU) tensors. skip_rows: the fused executor selects only (no gather, no rows).
  CompressResult compress_host(const PressInputs& in, Backend backend, bool skip_rows) const {
    if (backend == Backend::Reference) return Reference<PressT>::run(params_, in);
    PressOutput out;
    out.write_rows = !skip_rows;
    CompressResult r;
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2), d = in.keys.size(3);
    const bool direct = in.cache_dtype == at::kFloat;  // write straight into the result tensors
    if (direct)
      out.allocate = [&](int64_t rows) {
        r.keys = empty_cache_buffer(rows, d);
        r.values = empty_cache_buffer(rows, d);
        return std::pair<float*, float*>(r.keys.data_ptr<float>(), r.values.data_ptr<float>());
      };
    LayerInputs raw = in.raw();
    at::Tensor queries = project_queries(in, raw);  // keeps the buffer raw.queries points into alive
    const QueryStatistics stats = query_stats(in, raw);  // likewise for raw.query_mean / query_cov
    CpuExecutor<PressT>::run(params_, raw, out);
    if (!out.scores.empty())
      r.scores = at::from_blob(out.scores.data(), {B, H, S}, at::kFloat).clone();
    r.kept = std::move(out.kept);
    if (!direct && out.write_rows) {
      const int64_t n = r.kept.total();
      r.keys = at::from_blob(out.keys.data(), {n, d}, at::kFloat).to(in.cache_dtype);
      r.values = at::from_blob(out.values.data(), {n, d}, at::kFloat).to(in.cache_dtype);
    }
    return r;
  }

  // Hidden rows whose pre-RoPE queries the policies declare (Scorer/PostOp::query_rows), as one hull.
  std::pair<int64_t, int64_t> query_rows(const LayerInputs& raw) const {
    int64_t lo = raw.tokens, hi = 0;
    auto add = [&](std::pair<int64_t, int64_t> r) {
      if (r.second > r.first) lo = std::min(lo, r.first), hi = std::max(hi, r.second);
    };
    if constexpr (DeclaresQueryRows<Sc, typename Sc::Params>) add(Sc::query_rows(params_.scorer, raw));
    std::apply([&](const auto&... pp) {
      (([&] {
         if constexpr (DeclaresQueryRows<Po, typename Po::Params>) add(Po::query_rows(pp, raw));
       }()),
       ...);
    }, params_.post);
    return {std::max<int64_t>(lo, 0), std::min(hi, raw.tokens)};
  }

  // Projects the declared rows once for all query heads with libtorch's multithreaded GEMM and points
  // raw.queries at them (B, Hq, rows, d); empty when no policy reads queries or the press has nothing to do.
  at::Tensor project_queries(const PressInputs& in, LayerInputs& raw) const {
    if (params_.compression_ratio == 0.0 || !in.hidden_states.defined() || !in.q_proj.defined()) return {};
    const auto [lo, hi] = query_rows(raw);
    if (hi <= lo) return {};
    const int64_t R = hi - lo;
    at::Tensor q = prerope_query_rows(in.hidden_states, in.q_proj, in.q_bias, in.q_norm, raw.rms_norm_eps, raw.q_heads,
                                      lo, R);  // (B, Hq, R, d)
    raw.queries = q.data_ptr<float>();
    raw.query_row0 = lo;
    raw.query_rows = R;
    return q;
  }

  // The query statistics the scorer declares (Scorer::query_stats_request), once per layer for all heads with
  // libtorch's GEMMs (kernels/query_statistics.hpp); raw.query_mean/query_cov point at them. Empty when not asked
  // for or when the press has nothing to do.
  QueryStatistics query_stats(const PressInputs& in, LayerInputs& raw) const {
    QueryStatistics s;
    if constexpr (DeclaresQueryStats<Sc, typename Sc::Params>) {
      if (params_.compression_ratio == 0.0 || !in.hidden_states.defined() || !in.q_proj.defined()) return s;
      const QueryStatsRequest req = Sc::query_stats_request(params_.scorer, raw);
      if (req.rows <= 0 || req.row0 < 0 || req.row0 + req.rows > raw.tokens) return s;
      s = query_statistics(in.hidden_states, in.q_proj, in.q_bias, in.q_norm, raw.rms_norm_eps, raw.q_heads, req.row0,
                           req.rows, req.covariance);
      s.mean = s.mean.contiguous();
      raw.query_mean = s.mean.data_ptr<float>();
      if (req.covariance) {
        s.covariance = s.covariance.contiguous();
        raw.query_cov = s.covariance.data_ptr<float>();
      }
      raw.query_stats_row0 = raw.token_offset + req.row0;
      raw.query_stats_rows = req.rows;
    }
    return s;
  }

 public:
  // Every "policy.param" this press accepts.
  static std::vector<std::string> param_names() {
    std::vector<std::string> out;
    auto add = [&](std::string_view policy, std::vector<std::string> names) {
      for (auto& n : names) out.push_back(std::string(policy) + "." + n);
    };
    add(Sc::name, field_names<typename Sc::Params>());
    add(Se::name, field_names<typename Se::Params>());
    add(Gr::name, field_names<typename Gr::Params>());
    (add(Po::name, field_names<typename Po::Params>()), ...);
    return out;
  }

 private:
  // Each spec node names one policy of the press; its key=value pairs set that policy's parameters (a kvpress
  // wrapper that also takes its scorer's parameters, like pyramidkv(window_size=...), falls through to the scorer).
  void bind(const SpecNode& node) {
    for (const auto& [key, value] : node.args) {
      if (key == "compression_ratio") throw Error("press spec: give the compression ratio with --compression-ratio");
      bool done = false;
      auto try_slot = [&](std::string_view slot_name, auto& slot_params) {
        if (!done && slot_name == node.name) done = set_field(slot_params, key, value, node.name);
      };
      try_slot(Sc::name, params_.scorer);
      try_slot(Se::name, params_.selector);
      try_slot(Gr::name, params_.granularity);
      std::apply([&](auto&... pp) { (try_slot(Po::name, pp), ...); }, params_.post);
      if (!done) done = set_field(params_.scorer, key, value, node.name);  // wrapper taking scorer params
      if (!done) {
        std::string known;
        for (const auto& n : param_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error("press '" + node.name + "' has no parameter '" + key + "' (parameters of this press: " +
                    (known.empty() ? "none" : known) + ")");
      }
    }
    for (const auto& c : node.children) bind(c);
  }

  Params params_;
  std::string spec_;
};

template <class P>
void PressRegistry::add(std::string shape, std::string description, std::string example) {
  Entry e;
  e.example = example.empty() ? shape : std::move(example);
  if (parse_spec(e.example).shape() != shape)
    throw Error("press registry: example '" + e.example + "' does not have the shape '" + shape + "'");
  e.shape = std::move(shape);
  e.description = std::move(description);
  e.params = TypedPress<P>::param_names();
  e.make = [](const SpecNode& spec, double cr) -> std::unique_ptr<RuntimePress> {
    return std::make_unique<TypedPress<P>>(spec, cr);
  };
  entries_.push_back(std::move(e));
}

}  // namespace kvf
