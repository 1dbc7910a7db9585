#include "kernels/cuda/device_wrappers.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/DeviceGuard.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/error.hpp"
#include "kernels/cuda/bridge_util.hpp"
#include "kernels/cuda/chunk_layout.hpp"
#include "kernels/cuda/press_kernels.cuh"

namespace kvf::cuda {
namespace {

using bridge::check;
using bridge::require_cuda_f32;
using bridge::stream;
using bridge::view_of;
at::Tensor on(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t.to(like.device(), at::kFloat).contiguous() : t;
}

}  // namespace

DeviceKept chunk_select(const at::Tensor& scores, int64_t C, double cr) {
  require_cuda_f32(scores, "chunk scores", 3);
  if (C < 1) throw Error("chunk: chunk_length must be >= 1");
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t B = scores.size(0), H = scores.size(1), S = scores.size(2), BH = B * H;
  const ChunkLayout l = chunk_layout(S, C, cr);
  const at::Tensor flat = scores.view({BH, S});
  std::vector<at::Tensor> parts;
  if (l.n_full > 0) {
    const at::Tensor blk = flat.narrow(1, 0, l.n_full * C).reshape({BH * l.n_full, C}).contiguous();
    const at::Tensor pos = top_n(blk, l.per_full);  // (BH * n_full, per_full), chunk-relative
    const at::Tensor start = (at::arange(BH * l.n_full, pos.options()) % l.n_full) * static_cast<int32_t>(C);
    parts.push_back((pos + start.view({-1, 1})).view({BH, l.n_full * l.per_full}));
  }
  if (l.rem > 0)
    parts.push_back(top_n(flat.narrow(1, l.n_full * C, l.rem).contiguous(), l.per_rem) +
                    static_cast<int32_t>(l.n_full * C));
  const at::Tensor positions = parts.size() == 1 ? parts[0].contiguous() : at::cat(parts, 1).contiguous();
  return uniform_kept(positions, B, H);
}

DeviceKept chunkkv_select(const at::Tensor& scores, int64_t C, double cr) {
  require_cuda_f32(scores, "chunkkv scores", 3);
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t B = scores.size(0), H = scores.size(1), S = scores.size(2);
  const ChunkKVLayout l = chunkkv_layout(S, C, cr);
  if (l.n_full == 0) throw Error("chunkkv: fewer positions than one chunk go to the wrapped selector");
  const auto i64 = scores.options().dtype(at::kLong);
  const at::Tensor keys = at::empty({B, l.n_chunks}, i64);
  check(chunkkv_chunk_keys(scores.data_ptr<float>(), B, H, S, C, keys.data_ptr<int64_t>(), stream()), "chunkkv");
  // Ascending stable sort by chunk_order_key: best first, equal means in chunk order; the first n, in chunk order.
  const at::Tensor order = std::get<1>(at::sort(keys, /*stable=*/true, /*dim=*/1, /*descending=*/false));
  const at::Tensor top = std::get<0>(at::sort(order.narrow(1, 0, l.n), /*stable=*/true, 1, false));  // (B, n)
  const at::Tensor pos = top.unsqueeze(-1) * C + at::arange(C, i64).view({1, 1, C});               // (B, n, C)
  const at::Tensor valid = pos < S;  // the partial chunk's tail
  DeviceKept k;
  k.batch = B;
  k.heads = H;
  k.positions = pos.unsqueeze(1).expand({B, H, l.n, C}).masked_select(valid.unsqueeze(1).expand({B, H, l.n, C}))
                    .to(at::kInt)
                    .contiguous();
  k.rows = k.positions.numel();
  const at::Tensor counts = valid.sum({1, 2}).repeat_interleave(H);  // (B * H)
  k.offsets = at::cat({at::zeros({1}, i64), counts.cumsum(0)}).contiguous();
  return k;
}

at::Tensor think_query_norms(const QueryInputs& q, const at::Tensor& keys, int64_t window) {
  if (!q.hidden_states.defined() || !q.q_proj.defined() || !q.cos.defined() || !q.sin.defined())
    throw Error("think: needs the layer's hidden states, q_proj and RoPE tables");
  const c10::cuda::CUDAGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), d = keys.size(3), Hq = q.q_heads;
  if (Hq <= 0 || Hq % H != 0) throw Error("think: the query heads must be a multiple of the kv heads");
  const int64_t T = q.hidden_states.size(1), R = q.cos.size(1);
  const int64_t w = std::min(window, T), wr = std::min(window, R);
  if (w != wr) throw Error("think: the RoPE tables and the hidden states cover different windows");
  const at::Tensor Q = prerope_queries(q, keys, T - w, w);  // (B, Hq, w, d)
  const at::Tensor cs = on(q.cos, keys), sn = on(q.sin, keys);
  const at::Tensor qh = at::empty({B, Hq, d}, keys.options());
  check(think_query_energy(Q.data_ptr<float>(), cs.data_ptr<float>(), sn.data_ptr<float>(), B, Hq, w, d, R,
                           qh.data_ptr<float>(), stream()),
        "think queries");
  // Group mean in float, query heads in order (s = 0 + x_0 + x_1 ..., then / G), as ThinK::query_norms.
  const int64_t G = Hq / H;
  const at::Tensor g = qh.view({B, H, G, d});
  at::Tensor s = g.select(2, 0).clone();
  for (int64_t i = 1; i < G; ++i) s = s + g.select(2, i);
  return (s / static_cast<double>(G)).contiguous();
}

void think_prune(const at::Tensor& kept_keys, const DeviceKept& kept, const at::Tensor& qn, int64_t m) {
  require_cuda_f32(kept_keys, "kept keys", 2);
  require_cuda_f32(qn, "think query norms", 3);
  const c10::cuda::CUDAGuard guard(kept_keys.device());
  const int64_t d = kept_keys.size(1);
  if (qn.numel() != kept.batch * kept.heads * d) throw Error("think: query norms do not match the kept heads");
  const size_t bytes = think_workspace_bytes(kept.batch * kept.heads, d);
  const at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, kept_keys.options().dtype(at::kByte));
  check(think_prune(kept_keys.data_ptr<float>(), d, view_of(kept), qn.data_ptr<float>(), m, ws.data_ptr(), bytes,
                    stream()),
        "think");
}

at::Tensor lagkv_scores(const at::Tensor& keys, const at::Tensor& values, int64_t n_sink, int64_t lag, bool cross) {
  require_cuda_f32(keys, "keys", 4);
  require_cuda_f32(values, "values", 4);
  if (keys.sizes() != values.sizes()) throw Error("cuda: keys and values differ in shape");
  const c10::cuda::CUDAGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3);
  at::Tensor out = at::empty({B, H, S}, keys.options());
  const size_t bytes = lagkv_workspace_bytes(B * H, S, d, n_sink, lag);
  const at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, keys.options().dtype(at::kByte));
  check(lagkv_scores(keys.data_ptr<float>(), values.data_ptr<float>(), B * H, S, d, n_sink, lag, cross,
                     out.data_ptr<float>(), bytes ? ws.data_ptr() : nullptr, bytes, stream()),
        "lagkv");
  return out;
}

BlockRounds block_iterative(const at::Tensor& keys, const at::Tensor& values, int64_t n, int64_t block_size,
                            const SetScorer& score) {
  if (!keys.defined() || keys.dim() != 4) throw Error("block: keys must be a (B, H, S, d) tensor");
  if (values.defined() && values.sizes() != keys.sizes()) throw Error("block: values must have the keys' shape");
  const c10::DeviceGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3), BH = B * H;
  if (n < 0 || n > S || block_size < 1)
    throw Error("block: n = " + std::to_string(n) + " and block_size = " + std::to_string(block_size) +
                " must satisfy 0 <= n <= S = " + std::to_string(S) + " and block_size >= 1");
  const int64_t bs = std::min(block_size, S);
  const auto i64 = keys.options().dtype(at::kLong);
  at::Tensor scores = at::full({BH, S}, NAN, keys.options().dtype(at::kFloat));
  at::Tensor kept = at::arange(n, i64).expand({BH, n});  // per head, descending-score order
  const at::Tensor K = keys.reshape({BH, S, d});
  const at::Tensor V = values.defined() ? values.reshape({BH, S, d}) : at::Tensor();
  for (int64_t i = n; i < S; i += bs) {
    const int64_t end = std::min(i + bs, S), m = n + (end - i);
    const at::Tensor cur = at::cat({kept, at::arange(i, end, i64).expand({BH, end - i})}, 1);  // (BH, m)
    const at::Tensor rows = cur.unsqueeze(-1).expand({BH, m, d});
    const at::Tensor ks = K.gather(1, rows).view({B, H, m, d});
    const at::Tensor vs = V.defined() ? V.gather(1, rows).view({B, H, m, d}) : at::Tensor();
    const at::Tensor s = score(ks, vs).reshape({BH, m}).to(at::kFloat);
    scores.scatter_(1, cur, s);
    const at::Tensor order = std::get<1>(at::sort(s, /*stable=*/true, /*dim=*/1, /*descending=*/true));
    kept = cur.gather(1, order.narrow(1, 0, n));
  }
  BlockRounds r;
  r.positions = std::get<0>(at::sort(kept, 1)).to(at::kInt).contiguous();
  r.scores = scores.view({B, H, S});
  return r;
}

}  // namespace kvf::cuda
