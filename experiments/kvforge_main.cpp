// kvforge: command-line front end. Subcommands register themselves in main() (no static registration).
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "core/error.hpp"

namespace kvf::cli {
void add_generate_command(CLI::App& app);
void add_bench_runtime_command(CLI::App& app);
void add_press_commands(CLI::App& app);
void add_bench_press_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_bench_speed_command(CLI::App& app);
void add_trace_command(CLI::App& app);
}  // namespace kvf::cli

int main(int argc, char** argv) {
  CLI::App app{"kvforge: KV-cache compression for LLMs on libtorch (kvpress semantics, fused presses)"};
  app.require_subcommand(1);
  kvf::cli::add_generate_command(app);
  kvf::cli::add_bench_runtime_command(app);
  kvf::cli::add_press_commands(app);
  kvf::cli::add_bench_press_command(app);
  kvf::cli::add_eval_command(app);
  kvf::cli::add_sweep_command(app);
  kvf::cli::add_bench_speed_command(app);
  kvf::cli::add_trace_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kvf::Error& e) {
    std::fprintf(stderr, "kvforge: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvforge: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
