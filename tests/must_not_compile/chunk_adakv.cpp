// chunk(adakv): a chunk granularity selects per head inside each chunk (kvpress's ChunkPress wraps a
// ScorerPress), so a head-wise selector must be rejected at compile time.
#include "compose/press.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/adakv.hpp"
#include "policies/selectors/topk.hpp"

#ifdef KVF_MNC_CONTROL
using P = kvf::Press<kvf::scorers::Knorm, kvf::selectors::TopK, kvf::granularity::Chunk>;
#else
using P = kvf::Press<kvf::scorers::Knorm, kvf::selectors::AdaKV, kvf::granularity::Chunk>;
#endif
P::Params params;  // instantiates Press<...> and its static_asserts
