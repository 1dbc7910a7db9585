#pragma once
// Live mode: run a press from the registry on a model and a context, in the calling thread (kvviz calls it from
// a worker thread), and return the trace — the same content `kvforge trace` writes. Plain C++ interface: no
// torch or Qt types here, so the Qt side never includes torch headers (Qt's `slots`/`emit` macros clash).
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "viz/model/trace.hpp"

namespace kvviz::live {

struct LiveRequest {
  std::string model = "default";  // GGUF, HF folder, or "default" (SmolLM2-135M-Instruct)
  std::string context;            // the context text
  std::string context_name;       // shown in the trace (file name)
  std::string press = "snapkv(window_size=16)";
  double compression_ratio = 0.5;
};

// Example specs of the registered presses (for a combo box).
std::vector<std::string> registered_press_examples();

// (step, total, what): loading the model, then one step per layer as the press runs.
using Progress = std::function<void(int, int, const std::string&)>;

// Throws TraceError (bad spec, missing model, …) with the library's message; returns a trace with
// cancelled == true in `*cancelled` when `cancel` was set (the result is then empty).
Trace run_press(const LiveRequest& r, const Progress& progress, const std::atomic<bool>* cancel = nullptr);

}  // namespace kvviz::live
