#pragma once
// RuntimePress: a press picked by name at run time (type-erased Press<...> with bound parameters).
// compress() runs one layer through the fused CPU executor or through the libtorch reference path.
#include <memory>
#include <string>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include "compose/kept_sets.hpp"
#include "core/hooks.hpp"
#include "core/kv_cache.hpp"

namespace kvf {

enum class Backend { Fused, Reference };

// What compress() writes besides the selection. Rows::SkipUnchanged leaves the result's keys/values undefined when
// the press keeps rows as they are (no post-op: rewrites_rows() is false): a masked cache needs the selection only,
// as kvpress's AdaKV does, and the fused CPU executor then skips the gather. A press that rewrites rows
// (key_rerotation, think) writes them either way.
enum class Rows { Write, SkipUnchanged };

struct CompressResult {
  at::Tensor scores;  // (B, H, S) float32 as selection saw them (protected slots filled); undefined at cr == 0
  KeptSets kept;      // ascending positions per (b, h)
  at::Tensor keys;    // (total kept, d) in the cache dtype, head after head in KeptSets order; undefined after
  at::Tensor values;  // (total kept, d)                     Rows::SkipUnchanged on a press that keeps rows as they are
};

class RuntimePress {
 public:
  virtual ~RuntimePress() = default;
  virtual std::string spec() const = 0;  // canonical text, all parameters
  virtual double compression_ratio() const = 0;
  virtual bool needs_attentions() const = 0;
  // A top-level key_rerotation: the pipeline then continues questions at the compressed length (kvpress).
  virtual bool rerotates_positions() const = 0;
  // Whether a post-op rewrites the kept rows (key_rerotation, think): then a masked cache needs them written back.
  virtual bool rewrites_rows() const = 0;
  // Compresses one layer's cache wherever it lives; the result's tensors are on the cache's device (kept on the
  // host). A GPU cache uses the press's CUDA executor (Fused) when it has one, else host copies.
  virtual CompressResult compress(const LayerView& view, const LayerCache& cache, Backend backend,
                                  Rows rows = Rows::Write) const = 0;
  // Whether Fused runs natively on `device` (false: host copies there and back).
  virtual bool has_device_executor(const at::Device& device) const = 0;
};

}  // namespace kvf
