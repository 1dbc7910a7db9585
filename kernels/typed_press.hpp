#pragma once
// TypedPress<P>: RuntimePress for one composed press type, and PressRegistry::add<P>.
// Include this only in the registry translation units (it instantiates the executors).
#include <ATen/ATen.h>

#include <tuple>

#include "compose/params.hpp"
#include "core/error.hpp"
#include "kernels/cpu/executor.hpp"
#include "kernels/reference/reference.hpp"
#include "kernels/registry.hpp"

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
  const Params& params() const { return params_; }

  CompressResult compress(const LayerView& view, const LayerCache& cache, Backend backend) const override {
    PressInputs in = make_press_inputs(view, cache);
    {
      LayerInputs raw = in.raw();  // both backends reject bad input the same way
      raw.compression_ratio = params_.compression_ratio;
      Sc::validate(params_.scorer, raw);
    }
    if (backend == Backend::Reference) return Reference<PressT>::run(params_, in);
    PressOutput out;
    CpuExecutor<PressT>::run(params_, in.raw(), out);
    CompressResult r;
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2), d = in.keys.size(3);
    if (!out.scores.empty())
      r.scores = at::from_blob(out.scores.data(), {B, H, S}, at::kFloat).clone();
    r.kept = std::move(out.kept);
    const int64_t n = r.kept.total();
    r.keys = at::from_blob(out.keys.data(), {n, d}, at::kFloat).to(in.cache_dtype).clone();
    r.values = at::from_blob(out.values.data(), {n, d}, at::kFloat).to(in.cache_dtype).clone();
    return r;
  }

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
