#include "tests/press_support.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "core/rope.hpp"

namespace kvf::test {

RandomLayer::RandomLayer(const LayerShape& s) {
  at::manual_seed(s.seed);
  config.model_type = "llama";
  config.hidden_size = s.hidden;
  config.num_attention_heads = s.q_heads;
  config.num_key_value_heads = s.kv_heads;
  config.head_dim = s.head_dim;
  config.num_hidden_layers = s.num_layers;
  config.intermediate_size = 2 * s.hidden;
  config.vocab_size = 64;
  config.max_position_embeddings = 4096;
  config.rms_norm_eps = 1e-6;
  config.qk_norm = s.qk_norm;
  config.attention_bias = s.attention_bias;
  config.name = "random";

  const double ws = 1.0 / std::sqrt(static_cast<double>(s.hidden));
  weights.q_proj = at::randn({s.q_heads * s.head_dim, s.hidden}) * ws;
  weights.k_proj = at::randn({s.kv_heads * s.head_dim, s.hidden}) * ws;
  weights.v_proj = at::randn({s.kv_heads * s.head_dim, s.hidden}) * ws;
  weights.o_proj = at::randn({s.hidden, s.q_heads * s.head_dim}) * ws;
  if (s.attention_bias) {
    weights.q_bias = at::randn({s.q_heads * s.head_dim}) * 0.1;
    weights.k_bias = at::randn({s.kv_heads * s.head_dim}) * 0.1;
    weights.v_bias = at::randn({s.kv_heads * s.head_dim}) * 0.1;
  }
  if (s.qk_norm) {
    weights.q_norm = 1.0 + at::randn({s.head_dim}) * 0.1;
    weights.k_norm = 1.0 + at::randn({s.head_dim}) * 0.1;
  }

  const int64_t B = s.batch, T = s.seq, d = s.head_dim;
  auto h = at::randn({B, T, s.hidden});
  if (s.adversarial == LayerShape::Adversarial::Ties) h = (h * 2).round() / 2;
  auto pos = at::arange(T, at::kLong).unsqueeze(0).expand({B, T}).contiguous();
  auto inv_freq = rope_inv_freq(config);
  auto [cos, sin] = rope_cos_sin(inv_freq, pos, at::kFloat);
  auto rms = [&](const at::Tensor& x, const at::Tensor& w) {
    return w * (x * at::rsqrt(x.pow(2).mean(-1, true) + config.rms_norm_eps));
  };
  auto q = at::linear(h, weights.q_proj, weights.q_bias).view({B, T, s.q_heads, d});
  auto k = at::linear(h, weights.k_proj, weights.k_bias).view({B, T, s.kv_heads, d});
  auto v = at::linear(h, weights.v_proj, weights.v_bias).view({B, T, s.kv_heads, d}).transpose(1, 2);
  if (s.qk_norm) {
    q = rms(q, weights.q_norm);
    k = rms(k, weights.k_norm);
  }
  q = apply_rope(q.transpose(1, 2), cos, sin);
  k = apply_rope(k.transpose(1, 2), cos, sin);
  cache.keys = k.contiguous();
  cache.values = v.contiguous();
  using A = LayerShape::Adversarial;
  if (s.adversarial == A::Ties) {
    cache.keys = (cache.keys * 2).round() / 2;
    cache.values = (cache.values * 2).round() / 2;
  } else if (s.adversarial == A::SignedZeros) {
    for (int64_t t = 0; t < T; t += 3) {
      cache.keys.select(2, t).fill_(t % 2 ? -0.0 : 0.0);
      cache.values.select(2, t).fill_(t % 2 ? 0.0 : -0.0);
    }
  } else if (s.adversarial == A::Inf) {
    for (int64_t t = 1; t < T; t += 7) cache.keys.select(2, t).select(2, t % d).fill_(t % 2 ? INFINITY : -INFINITY);
  }

  view.layer = s.layer;
  view.phase = Phase::Prefill;
  view.config = &config;
  view.weights = &weights;
  view.hidden_states = h;
  view.position_ids = pos;
  view.cos = cos;
  view.sin = sin;
  view.inv_freq = inv_freq;
  if (s.attentions) {
    auto kk = cache.keys.repeat_interleave(s.q_heads / s.kv_heads, 1);
    auto sc = at::matmul(q, kk.transpose(2, 3)) / std::sqrt(static_cast<double>(d));
    auto mask = at::ones({T, T}, at::kBool).triu(1);
    view.attentions = at::softmax(sc.masked_fill(mask, -INFINITY), -1);
  }
}

namespace {

bool close(double a, double b, double rtol, double atol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (a == b) return true;  // equal infinities
  return std::abs(a - b) <= atol + rtol * std::abs(b);
}

}  // namespace

std::string compare_results(const CompressResult& fused, const CompressResult& ref, int64_t seq, double score_rtol,
                            double score_atol, double kv_atol) {
  std::ostringstream err;
  if (fused.scores.defined() != ref.scores.defined()) return "scores defined on one side only";
  at::Tensor rs;
  if (ref.scores.defined()) {
    if (fused.scores.sizes() != ref.scores.sizes()) return "score shapes differ";
    auto fs = fused.scores.to(at::kFloat).contiguous().view(-1);
    rs = ref.scores.to(at::kFloat).contiguous().view(-1);
    const float* a = fs.data_ptr<float>();
    const float* b = rs.data_ptr<float>();
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < fs.numel(); ++i)
      if (!close(a[i], b[i], score_rtol, score_atol) && !bad++) first = i;
    if (bad) {
      err << bad << " scores differ; first at flat index " << first << ": fused " << a[first] << ", reference "
          << b[first];
      return err.str();
    }
  }
  const auto& F = fused.kept;
  const auto& R = ref.kept;
  if (F.batch != R.batch || F.heads != R.heads) return "kept sets have different (batch, heads)";
  const int64_t d = ref.keys.size(1);
  auto fk = fused.keys.to(at::kFloat).contiguous(), rk = ref.keys.to(at::kFloat).contiguous();
  auto fv = fused.values.to(at::kFloat).contiguous(), rv = ref.values.to(at::kFloat).contiguous();
  for (int64_t b = 0; b < R.batch; ++b)
    for (int64_t h = 0; h < R.heads; ++h) {
      const int32_t* fp = F.begin(b, h);
      const int32_t* rp = R.begin(b, h);
      const int64_t nf = F.count(b, h), nr = R.count(b, h);
      if (nf != nr) {
        err << "(b=" << b << ", h=" << h << ") keeps " << nf << " fused vs " << nr << " reference";
        return err.str();
      }
      for (int64_t i = 1; i < nf; ++i)
        if (fp[i] <= fp[i - 1]) return "fused kept positions are not strictly ascending (duplicates?)";
      for (int64_t i = 1; i < nr; ++i)
        if (rp[i] <= rp[i - 1]) return "reference kept positions are not strictly ascending (duplicates?)";
      std::vector<int32_t> only_f, only_r;
      std::set_difference(fp, fp + nf, rp, rp + nr, std::back_inserter(only_f));
      std::set_difference(rp, rp + nr, fp, fp + nf, std::back_inserter(only_r));
      if (!only_f.empty()) {
        if (!rs.defined()) return "kept sets differ and there are no scores to check ties against";
        const float* s = rs.data_ptr<float>() + (b * R.heads + h) * seq;
        std::vector<float> sf, sr;
        for (int32_t p : only_f) sf.push_back(s[p]);
        for (int32_t p : only_r) sr.push_back(s[p]);
        std::sort(sf.begin(), sf.end());
        std::sort(sr.begin(), sr.end());
        for (size_t i = 0; i < sf.size(); ++i)
          if (!close(sf[i], sr[i], score_rtol, score_atol)) {
            err << "(b=" << b << ", h=" << h << ") kept sets differ beyond ties: fused keeps position " << only_f[i]
                << " (score " << sf[i] << "), reference keeps " << only_r[i] << " (score " << sr[i] << ")";
            return err.str();
          }
      }
      // Rows at the same position must agree; keys only where the whole set agrees (post-ops such as key
      // re-rotation depend on the kept set).
      const bool same_set = only_f.empty();
      const int64_t fo = F.offsets[b * F.heads + h], ro = R.offsets[b * R.heads + h];
      for (int64_t i = 0, j = 0; i < nf && j < nr;) {
        if (fp[i] < rp[j]) { ++i; continue; }
        if (fp[i] > rp[j]) { ++j; continue; }
        const double dv = (fv[fo + i] - rv[ro + j]).abs().max().item<double>();
        const double dk = same_set ? (fk[fo + i] - rk[ro + j]).abs().max().item<double>() : 0.0;
        if (dv > kv_atol || dk > kv_atol * std::max(1.0, rk[ro + j].abs().max().item<double>())) {
          err << "(b=" << b << ", h=" << h << ", position " << fp[i] << ") kept rows differ: |dk| " << dk << ", |dv| "
              << dv << " (d=" << d << ")";
          return err.str();
        }
        ++i, ++j;
      }
    }
  return "";
}

}  // namespace kvf::test
