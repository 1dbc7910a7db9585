#pragma once
// Pieces shared by the kvforge subcommands: model options, load progress, chat prompt building.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/model_loader.hpp"

namespace kvf::cli {

struct ModelOptions {
  std::string model = "default";
  std::string dtype = "float32";
  int threads = 0;  // 0 = libtorch default
  std::string device = "cpu";
  void add_to(CLI::App& app);
};

// Loads the model with a progress line on stderr.
LoadedModel load_with_progress(const ModelOptions& o);

struct PromptOptions {
  bool no_chat_template = false;
  std::string system;
  void add_to(CLI::App& app);
};

// Token ids of `user_text` rendered with the model's chat template (or raw, with --no-chat-template).
std::vector<int32_t> build_prompt(const LoadedModel& m, const PromptOptions& o, const std::string& user_text);

}  // namespace kvf::cli
