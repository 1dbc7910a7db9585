// A post-op must act on the kept keys/values: one without apply(params, inputs, kept, keys, values) is not a
// PostOp and the press must be rejected at compile time.
#include "compose/press.hpp"
#include "policies/granularity/token.hpp"
#include "policies/postops/key_rerotation.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/topk.hpp"

struct NoApply {
  static constexpr std::string_view name = "no_apply";
  struct Params {};
};

#ifdef KVF_MNC_CONTROL
using P = kvf::Press<kvf::scorers::Knorm, kvf::selectors::TopK, kvf::granularity::Token, kvf::postops::KeyRerotation>;
#else
using P = kvf::Press<kvf::scorers::Knorm, kvf::selectors::TopK, kvf::granularity::Token, NoApply>;
#endif
P::Params params;
