// Wrapper presses: head-wise and per-layer selectors, chunk/block granularities, post-ops.
// One line per press: r.add<Press<...>>("shape", "description", "example spec with small parameters");
#include "kernels/reference/scorers.hpp"
#include "kernels/reference/wrappers.hpp"
#include "kernels/typed_press.hpp"

namespace kvf {

void add_wrapper_presses(PressRegistry& r) {
  using namespace scorers;
  using namespace selectors;
  using namespace granularity;
  using namespace postops;

  // Selectors.
  r.add<Press<Knorm, AdaKV, Token>>(
      "adakv(knorm)",
      "AdaKVPress(KnormPress): one budget per batch row spent across heads, every head keeps at least "
      "alpha_safeguard of it; ragged per-head cache",
      "adakv(knorm, alpha_safeguard=0.2)");
  r.add<Press<SnapKV, AdaKV, Token>>("adakv(snapkv)", "AdaKVPress(SnapKVPress) (kvpress's adakv_snapkv)",
                                     "adakv(snapkv(window_size=8), alpha_safeguard=0.2)");
  r.add<Press<ExpectedAttention, AdaKV, Token>>(
      "adakv(expected_attention)",
      "AdaKVPress(ExpectedAttentionPress) (kvpress's expected_attention entry uses epsilon=1e-2)",
      "adakv(expected_attention(epsilon=0.01, n_future_positions=64, n_sink=4), alpha_safeguard=0.2)");
  r.add<Press<Knorm, PerLayer, Token>>(
      "per_layer(knorm)",
      "PerLayerCompressionPress(KnormPress): layer l removes compression_ratios[l] (one per layer; "
      "--compression-ratio 0 disables the press, any other value is not used)",
      "per_layer(knorm, compression_ratios=[0.1,0.5,0.25,0.8])");
  r.add<Press<SnapKV, PyramidKV, Token>>(
      "pyramidkv",
      "PyramidKVPress: SnapKV scores, per-layer budgets on a linear schedule (beta), uniform when the smallest "
      "budget would fall below window_size",
      "pyramidkv(window_size=8, kernel_size=5, beta=20)");

  // Granularities.
  r.add<Press<Knorm, TopK, Chunk>>(
      "chunk(knorm)", "ChunkPress(KnormPress): chunks of chunk_length scored and compressed independently",
      "chunk(knorm, chunk_length=16)");
  r.add<Press<Knorm, TopK, ChunkKV>>(
      "chunkkv(knorm)",
      "ChunkKVPress(KnormPress): keeps whole chunks of chunk_length, ranked by their mean head-summed score",
      "chunkkv(knorm, chunk_length=5)");
  r.add<Press<SnapKV, TopK, ChunkKV>>("chunkkv(snapkv)", "ChunkKVPress(SnapKVPress) (kvpress's chunkkv, chunk 20)",
                                     "chunkkv(snapkv(window_size=8), chunk_length=5)");
  r.add<Press<Knorm, TopK, Block>>(
      "block(knorm)", "BlockPress(KnormPress): block-iterative top-k over blocks of block_size",
      "block(knorm, block_size=8)");
  r.add<Press<KeyDiff, TopK, Block>>("block(keydiff)", "BlockPress(KeyDiffPress) (kvpress's block_keydiff, block 128)",
                                     "block(keydiff, block_size=8)");

  // Post-ops.
  r.add<Press<Knorm, TopK, Token, KeyRerotation>>(
      "key_rerotation(knorm)",
      "KeyRerotationPress(KnormPress): kept keys re-rotated to contiguous RoPE positions 0..n-1",
      "key_rerotation(knorm)");
  r.add<Press<StreamingLLM, TopK, Token, KeyRerotation>>(
      "key_rerotation(streaming_llm)", "KeyRerotationPress(StreamingLLMPress): sinks + recent window, re-rotated",
      "key_rerotation(streaming_llm(n_sink=4))");
  r.add<Press<Knorm, TopK, Token, ThinK>>(
      "think(knorm)",
      "ComposedPress([KnormPress, ThinKPress]): knorm token pruning, then the key channels with the smallest "
      "query x key energy zeroed (key_channel_compression_ratio; kvpress's snap_think shape)",
      "think(knorm, key_channel_compression_ratio=0.5, window_size=8)");
  r.add<Press<SnapKV, TopK, Token, ThinK>>(
      "think(snapkv)", "ComposedPress([SnapKVPress, ThinKPress]) (kvpress's snap_think)",
      "think(snapkv(window_size=8), key_channel_compression_ratio=0.5, window_size=8)");
}

}  // namespace kvf
