#include "core/weights.hpp"

#include <ATen/ATen.h>

#include <map>

#include "core/error.hpp"
#include "core/gguf.hpp"
#include "core/gguf_dequant.hpp"
#include "core/gguf_names.hpp"
#include "core/safetensors.hpp"
#include "core/tensor_io.hpp"

namespace kvf {
namespace {

using Getter = std::function<at::Tensor(const std::string& name, bool required)>;

void expect_shape(const at::Tensor& t, std::vector<int64_t> shape, const std::string& name, const std::string& src) {
  if (t.sizes().vec() != shape) {
    std::string want, got;
    for (auto d : shape) want += std::to_string(d) + ",";
    for (auto d : t.sizes()) got += std::to_string(d) + ",";
    throw Error(src + ": tensor '" + name + "' has shape (" + got + ") but the config implies (" + want + ")");
  }
}

// Pulls every tensor the config needs through `get` (HF names), checks shapes, converts to dtype.
ModelWeights assemble(const ModelConfig& c, at::ScalarType dtype, const Getter& get, const std::string& src,
                      const LoadProgress& progress) {
  const int64_t hid = c.hidden_size, D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  auto take = [&](const std::string& name, std::vector<int64_t> shape, bool required = true) {
    auto t = get(name, required);
    if (!t.defined()) return t;
    expect_shape(t, shape, name, src);
    return t.to(dtype).contiguous();
  };
  ModelWeights w;
  w.embed_tokens = take("model.embed_tokens.weight", {c.vocab_size, hid});
  w.norm = take("model.norm.weight", {hid});
  w.lm_head = take("lm_head.weight", {c.vocab_size, hid}, /*required=*/!c.tie_word_embeddings);
  if (!w.lm_head.defined()) w.lm_head = w.embed_tokens;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    L.input_layernorm = take(p + "input_layernorm.weight", {hid});
    L.post_attention_layernorm = take(p + "post_attention_layernorm.weight", {hid});
    L.q_proj = take(p + "self_attn.q_proj.weight", {H * D, hid});
    L.k_proj = take(p + "self_attn.k_proj.weight", {Hkv * D, hid});
    L.v_proj = take(p + "self_attn.v_proj.weight", {Hkv * D, hid});
    L.o_proj = take(p + "self_attn.o_proj.weight", {hid, H * D});
    if (c.attention_bias) {
      L.q_bias = take(p + "self_attn.q_proj.bias", {H * D});
      L.k_bias = take(p + "self_attn.k_proj.bias", {Hkv * D});
      L.v_bias = take(p + "self_attn.v_proj.bias", {Hkv * D});
    }
    if (c.qk_norm) {
      L.q_norm = take(p + "self_attn.q_norm.weight", {D});
      L.k_norm = take(p + "self_attn.k_norm.weight", {D});
    }
    L.gate_proj = take(p + "mlp.gate_proj.weight", {c.intermediate_size, hid});
    L.up_proj = take(p + "mlp.up_proj.weight", {c.intermediate_size, hid});
    L.down_proj = take(p + "mlp.down_proj.weight", {hid, c.intermediate_size});
    w.layers.push_back(std::move(L));
    if (progress) progress("layers", l + 1, c.num_hidden_layers);
  }
  return w;
}

}  // namespace

int64_t ModelWeights::bytes() const {
  auto nb = [](const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : int64_t{0}; };
  int64_t n = nb(embed_tokens) + nb(norm) + (lm_head.is_same(embed_tokens) ? 0 : nb(lm_head));
  for (const auto& L : layers)
    for (const auto* t : {&L.input_layernorm, &L.q_proj, &L.k_proj, &L.v_proj, &L.q_bias, &L.k_bias, &L.v_bias,
                          &L.o_proj, &L.q_norm, &L.k_norm, &L.post_attention_layernorm, &L.gate_proj, &L.up_proj,
                          &L.down_proj})
      n += nb(*t);
  return n;
}

void ModelWeights::to(const at::Device& device) {
  auto mv = [&](at::Tensor& t) {
    if (t.defined() && t.device() != device) t = t.to(device);
  };
  const bool tied = lm_head.is_same(embed_tokens);
  mv(embed_tokens);
  mv(norm);
  if (tied) lm_head = embed_tokens;
  else mv(lm_head);
  for (auto& L : layers)
    for (auto* t : {&L.input_layernorm, &L.q_proj, &L.k_proj, &L.v_proj, &L.q_bias, &L.k_bias, &L.v_bias, &L.o_proj,
                    &L.q_norm, &L.k_norm, &L.post_attention_layernorm, &L.gate_proj, &L.up_proj, &L.down_proj})
      mv(*t);
}

ModelWeights load_weights(const SafetensorsCheckpoint& ckpt, const ModelConfig& cfg, at::ScalarType dtype,
                          const LoadProgress& progress) {
  const std::string src = "checkpoint '" + cfg.name + "'";
  Getter get = [&](const std::string& name, bool required) -> at::Tensor {
    const TensorView* tv = ckpt.find(name);
    if (!tv) {
      if (required) throw Error(src + ": missing tensor '" + name + "'");
      return {};
    }
    if (tv->dtype != DType::F32 && tv->dtype != DType::F16 && tv->dtype != DType::BF16)
      throw Error(src + ": tensor '" + name + "' has dtype " + std::string(dtype_name(tv->dtype)) +
                  "; weights must be F32, F16 or BF16");
    return tensor_from_view(*tv);
  };
  return assemble(cfg, dtype, get, src, progress);
}

ModelWeights load_weights(const GgufFile& gguf, const ModelConfig& cfg, at::ScalarType dtype,
                          const LoadProgress& progress) {
  const std::string src = gguf.path().string();
  const bool permuted = cfg.model_type == "llama";  // llama.cpp permutes Q/K rows for llama-arch only
  std::map<std::string, const GgufTensorInfo*> by_hf;
  for (const auto& ti : gguf.tensors())
    if (auto hf = hf_name_from_gguf(ti.name)) by_hf[*hf] = &ti;
  Getter get = [&](const std::string& name, bool required) -> at::Tensor {
    auto it = by_hf.find(name);
    if (it == by_hf.end()) {
      if (required) throw Error(src + ": missing tensor for '" + name + "'");
      return {};
    }
    const GgufTensorInfo& ti = *it->second;
    if (!ggml_can_dequantize(ti.type))
      throw Error(src + ": tensor '" + ti.name + "' has type " + std::string(ggml_type_name(ti.type)) +
                  ", which kvforge cannot dequantise (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
    std::vector<int64_t> shape(ti.ne.rbegin(), ti.ne.rend());  // ggml ne[0] is the row length
    auto t = at::empty(shape, at::kFloat);
    dequantize(ti.type, ti.data, t.data_ptr<float>(), ti.numel());
    const bool is_q = name.find("self_attn.q_proj") != std::string::npos;
    const bool is_k = name.find("self_attn.k_proj") != std::string::npos;
    if (permuted && (is_q || is_k)) {
      const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
      unpermute_qk_rows(t.data_ptr<float>(), rows, cols, is_q ? cfg.num_attention_heads : cfg.num_key_value_heads);
    }
    return t;
  };
  return assemble(cfg, dtype, get, src, progress);
}

}  // namespace kvf
