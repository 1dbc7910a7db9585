// Offline datasets (RULER-style synthetic tasks, a needle grid) and RULER's string-match metrics.
// Generation is a deterministic function of (seed, task, length, sample index): a splitmix64 stream per sample,
// no std:: distributions (their output differs between standard libraries). docs/eval.md documents the tasks.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "experiments/eval/eval.hpp"

namespace kvf::eval {
namespace {

// ~600 common English words written by the project (no download, no system word list needed).
constexpr const char* kWords =
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water room "
    "mother area money story fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war history party result "
    "change morning reason research girl guy moment air teacher force education foot boy age policy process music "
    "market sense nation plan college interest death experience effect class control care field development role "
    "effort rate heart drug show leader light voice wife police mind price report decision son view relationship "
    "town road arm difference value building action model season society tax director position player record paper "
    "space ground form event official matter center couple site project activity star table need court oil "
    "situation cost industry figure street image phone data picture practice piece land product doctor wall patient "
    "worker news test movie north love support technology step baby computer type attention film tree source "
    "organization hair window evidence population site garden river island mountain forest valley ocean desert "
    "village bridge castle harbor meadow orchard canyon glacier lagoon prairie summit tunnel apple banana cherry "
    "grape lemon mango melon olive peach pear plum berry carrot onion potato tomato pepper garlic ginger honey bread "
    "butter cheese cookie noodle pasta rice salad soup sugar candle blanket bottle button camera chair clock "
    "compass cup drum engine feather guitar hammer helmet kettle ladder lamp magnet mirror needle notebook pencil "
    "piano pillow rope saddle scissors shovel spoon stamp sword telescope ticket trumpet umbrella violin wagon "
    "wheel whistle anchor arrow basket beacon bell brush cable chain coin crown diamond engine flag globe jacket "
    "kite lantern medal net oar pearl puzzle ribbon rocket shield statue tent torch trophy vase badger beaver bison "
    "camel cheetah dolphin donkey eagle falcon ferret gazelle giraffe hamster hedgehog jaguar koala lemur leopard "
    "lizard lobster otter owl panda parrot pelican penguin rabbit raccoon salmon seal shark sparrow squirrel swan "
    "tiger turtle walrus whale wolf zebra amber azure crimson golden indigo ivory jade lilac maroon olive scarlet "
    "silver teal violet able bright calm clever brave eager fancy gentle happy jolly kind lively nice proud quiet "
    "rapid silly smart swift tidy vast warm wise young ancient bold broad busy clean cold cool curious dark deep "
    "dry early easy empty fair famous fast fresh full great green heavy high honest huge large late little long "
    "loud low modern narrow new noble old open plain polite quick rare real rich rough round sharp short simple "
    "slow small soft solid strange strong sweet tall thick thin tiny true warm wet wide wild accept admire answer "
    "arrive bake borrow build carry catch climb collect cook cross dance deliver discover dream drive explore fly "
    "follow gather grow guess hunt imagine invent jump keep kick knit laugh learn listen march measure mend notice "
    "offer paint plant play pour promise pull push reach read repair rescue ride row sail search shout sing sketch "
    "skip sleep smile solve sort speak spin swim teach throw travel visit wander wash watch whisper win wonder write "
    "autumn winter spring summer breeze cloud fog frost rain rainbow snow storm sunshine thunder wind dawn dusk "
    "midnight noon evening planet comet galaxy meteor moon orbit nebula sun universe atom crystal fossil marble "
    "pebble quartz sand stone timber velvet wool cotton linen silk leather paper metal copper iron bronze steel tin "
    "zinc";

std::vector<std::string> split_words(const char* s) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::istringstream in(s);
  std::string w;
  while (in >> w)
    if (seen.insert(w).second) out.push_back(w);
  return out;
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

uint64_t sample_seed(uint64_t seed, const std::string& task, int64_t length, int64_t index) {
  Rng r(seed ^ fnv1a(task));
  r.s ^= static_cast<uint64_t>(length) * 0x100000001b3ULL;
  r.next();
  r.s ^= static_cast<uint64_t>(index) * 0xc2b2ae3d27d4eb4fULL;
  return r.next();
}

const std::string kNoise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

std::string number7(Rng& r) { return std::to_string(1000000 + r.below(9000000)); }
std::string uuid(Rng& r) {
  static const char* hex = "0123456789abcdef";
  std::string u;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) u += '-';
    u += hex[r.below(16)];
  }
  return u;
}
std::string word_key(Rng& r) {
  const auto& w = word_list();
  return w[r.below(w.size())] + "-" + w[r.below(w.size())];
}

std::string capitalize(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// n haystack sentences: noise (RULER's) or word sentences (random words, 6-14 per sentence).
std::vector<std::string> haystack(const std::string& kind, int64_t n, uint64_t seed) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  if (kind == "noise") {
    for (int64_t i = 0; i < n; ++i) out.push_back(kNoise);
    return out;
  }
  Rng r(seed ^ 0x5bd1e995ULL);
  const auto& w = word_list();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 6 + static_cast<int64_t>(r.below(9));
    std::string s;
    for (int64_t j = 0; j < len; ++j) {
      std::string x = w[r.below(w.size())];
      s += j == 0 ? capitalize(x) : " " + x;
    }
    out.push_back(s + ".");
  }
  return out;
}

// Inserts `items` at the given depths (percent) into sentences; stable for equal depths.
std::string insert_at_depths(std::vector<std::string> sents, const std::vector<std::pair<int64_t, std::string>>& items) {
  std::vector<std::pair<size_t, std::string>> at;
  for (const auto& [d, s] : items) at.push_back({static_cast<size_t>(sents.size() * std::clamp<int64_t>(d, 0, 100) / 100), s});
  std::stable_sort(at.begin(), at.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i <= sents.size(); ++i) {
    while (k < at.size() && at[k].first == i) {
      out += (out.empty() ? "" : " ") + at[k].second;
      ++k;
    }
    if (i < sents.size()) out += (out.empty() ? "" : " ") + sents[i];
  }
  return out;
}

// Largest n in [lo, ...] with fits(n); build(n) is deterministic in n.
template <class Build>
Sample fit(int64_t length, const TokenCounter& count, Build build, int64_t start = 8) {
  auto tokens = [&](const Sample& s) { return count(s.context + s.question + " " + s.answer_prefix); };
  Sample best = build(0);
  if (tokens(best) > length)
    throw Error("context length " + std::to_string(length) + " tokens is too short for task '" + best.task +
                "' (its template alone needs " + std::to_string(tokens(best)) + ")");
  int64_t lo = 0, hi = start;
  // grow
  while (true) {
    Sample s = build(hi);
    if (tokens(s) > length) break;
    lo = hi;
    best = std::move(s);
    hi *= 2;
    if (hi > (int64_t{1} << 24)) break;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    Sample s = build(mid);
    if (tokens(s) <= length) {
      lo = mid;
      best = std::move(s);
    } else {
      hi = mid;
    }
  }
  best.prompt_tokens = tokens(best);
  best.target_length = length;
  return best;
}

struct NiahSpec {
  std::string haystack;  // noise | words | needle
  std::string key_type;  // words | numbers | uuids
  std::string value_type;  // numbers | uuids
  int num_keys = 1, num_values = 1, num_queries = 1;
};

const std::map<std::string, NiahSpec>& niah_specs() {
  static const std::map<std::string, NiahSpec> m = {
      {"niah_single_1", {"noise", "words", "numbers"}},
      {"niah_single_2", {"words", "words", "numbers"}},
      {"niah_single_3", {"words", "words", "uuids"}},
      {"niah_multikey_1", {"words", "words", "numbers", 4}},
      {"niah_multikey_2", {"needle", "words", "numbers"}},
      {"niah_multikey_3", {"needle", "uuids", "uuids"}},
      {"niah_multivalue", {"words", "words", "numbers", 1, 4}},
      {"niah_multiquery", {"words", "words", "numbers", 4, 1, 4}},
  };
  return m;
}

std::string make_value(const std::string& type, Rng& r) { return type == "uuids" ? uuid(r) : number7(r); }
std::string make_key(const std::string& type, Rng& r) {
  return type == "uuids" ? uuid(r) : type == "numbers" ? number7(r) : word_key(r);
}

std::string join_query(const std::vector<std::string>& q) {
  if (q.size() == 1) return q[0];
  std::string s;
  for (size_t i = 0; i + 1 < q.size(); ++i) s += (i ? ", " : "") + q[i];
  return s + " and " + q.back();
}

Sample niah(const std::string& task, const NiahSpec& sp, uint64_t seed, int64_t n, int64_t fixed_depth) {
  Rng r(seed);
  const std::string tv = sp.value_type == "uuids" ? "uuids" : "numbers";
  const std::string tk = sp.key_type == "uuids" ? "uuid" : sp.key_type == "numbers" ? "number" : "key";
  (void)tk;
  // needles: num_keys keys, each with num_values values; the first num_queries keys are asked.
  std::vector<std::string> keys;
  std::set<std::string> used;
  while (static_cast<int>(keys.size()) < sp.num_keys) {
    auto k = make_key(sp.key_type, r);
    if (used.insert(k).second) keys.push_back(k);
  }
  std::vector<std::pair<int64_t, std::string>> needles;
  std::vector<std::string> answers;
  for (int ki = 0; ki < sp.num_keys; ++ki)
    for (int vi = 0; vi < sp.num_values; ++vi) {
      const std::string v = make_value(sp.value_type, r);
      const int64_t depth = fixed_depth >= 0 ? fixed_depth : static_cast<int64_t>(r.below(101));
      needles.push_back({depth, "One of the special magic " + tv + " for " + keys[ki] + " is: " + v + "."});
      if (ki < sp.num_queries) answers.push_back(v);
    }
  std::vector<std::string> queries(keys.begin(), keys.begin() + sp.num_queries);
  std::vector<std::string> sents;
  if (sp.haystack == "needle") {
    Rng hr(seed ^ 0xabcdefULL);
    for (int64_t i = 0; i < n; ++i) {
      std::string k;
      do k = make_key(sp.key_type, hr);
      while (used.count(k));
      sents.push_back("One of the special magic " + tv + " for " + k + " is: " + make_value(sp.value_type, hr) + ".");
    }
  } else {
    sents = haystack(sp.haystack, n, seed);
  }
  Sample s;
  s.task = task;
  s.depth = fixed_depth;
  const std::string q = join_query(queries);
  s.context = "Some special magic " + tv + " are hidden within the following text. Make sure to memorize it. I will quiz "
              "you about the " + tv + " afterwards.\n" + insert_at_depths(sents, needles) + "\n";
  s.question = "What are all the special magic " + tv + " for " + q + " mentioned in the provided text?";
  s.answer_prefix = "The special magic " + tv + " for " + q + " mentioned in the provided text are";
  s.answers = answers;
  s.max_new_tokens = 128;
  return s;
}

std::string var_name(Rng& r) {
  std::string v;
  for (int i = 0; i < 5; ++i) v += static_cast<char>('A' + r.below(26));
  return v;
}

Sample vt(uint64_t seed, int64_t n) {
  Rng r(seed);
  const int hops = 4;
  std::vector<std::string> vars;
  std::set<std::string> used;
  while (static_cast<int>(vars.size()) < hops + 1) {
    auto v = var_name(r);
    if (used.insert(v).second) vars.push_back(v);
  }
  const std::string value = std::to_string(10000 + r.below(90000));
  std::vector<int64_t> depths;
  for (int i = 0; i <= hops; ++i) depths.push_back(static_cast<int64_t>(r.below(101)));
  std::sort(depths.begin(), depths.end());  // the chain appears in order
  std::vector<std::pair<int64_t, std::string>> items;
  items.push_back({depths[0], "VAR " + vars[0] + " = " + value + "."});
  for (int i = 1; i <= hops; ++i) items.push_back({depths[i], "VAR " + vars[i] + " = VAR " + vars[i - 1] + "."});
  Sample s;
  s.task = "vt";
  s.context = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n" +
              insert_at_depths(haystack("noise", n, seed), items) + "\n";
  s.question = "Question: Find all variables that are assigned the value " + value + " in the text above.";
  s.answer_prefix = "Answer: According to the chain(s) of variable assignment in the text above, " +
                    std::to_string(hops + 1) + " variables are assgined the value " + value + ", they are: ";
  s.answers = vars;
  s.max_new_tokens = 30;
  return s;
}

// Common-words extraction: 10 words repeated freq_cw times, n others freq_ucw times, shuffled, numbered.
Sample cwe(uint64_t seed, int64_t n, int64_t freq_cw) {
  Rng r(seed);
  std::vector<std::string> w = word_list();
  r.shuffle(w);
  const int64_t num_cw = 10;
  const int64_t freq_ucw = std::max<int64_t>(1, freq_cw / 10);
  n = std::min<int64_t>(n, static_cast<int64_t>(w.size()) - num_cw);
  std::vector<std::string> items;
  for (int64_t i = 0; i < num_cw; ++i)
    for (int64_t k = 0; k < freq_cw; ++k) items.push_back(w[i]);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < freq_ucw; ++k) items.push_back(w[num_cw + i]);
  r.shuffle(items);
  std::string list;
  for (size_t i = 0; i < items.size(); ++i) list += std::to_string(i + 1) + ". " + items[i] + " ";
  Sample s;
  s.task = "cwe";
  s.context = "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones "
              "that appear most often.\n" + list + "\n";
  s.question = "Question: What are the 10 most common words in the above list?";
  s.answer_prefix = "Answer: The top 10 words that appear most often in the list are:";
  s.answers.assign(w.begin(), w.begin() + num_cw);
  s.max_new_tokens = 120;
  return s;
}

// Frequent-words extraction: coded words with Zipf(2) counts; "...." is the most frequent item (to be ignored).
Sample fwe(uint64_t seed, int64_t n) {
  Rng r(seed);
  const int64_t vocab = 40;
  std::vector<std::string> codes;
  std::set<std::string> used;
  while (static_cast<int64_t>(codes.size()) < vocab) {
    std::string c;
    const int len = 3 + static_cast<int>(r.below(4));
    for (int i = 0; i < len; ++i) c += static_cast<char>('a' + r.below(26));
    if (used.insert(c).second) codes.push_back(c);
  }
  // rank 0 = "....", ranks 1..3 the answers; count(rank) = floor(total / (rank+1)^2), total grows with n.
  const int64_t total = 9 + n;
  std::vector<std::string> items;
  for (int64_t rank = 0; rank <= vocab; ++rank) {
    const int64_t c = std::max<int64_t>(rank <= 3 ? 4 - rank : 0, total / ((rank + 1) * (rank + 1)));
    for (int64_t k = 0; k < c; ++k) items.push_back(rank == 0 ? "...." : codes[rank - 1]);
  }
  r.shuffle(items);
  std::string text;
  for (auto& it : items) text += (text.empty() ? "" : " ") + it;
  Sample s;
  s.task = "fwe";
  s.context = "Read the following coded text and track the frequency of each coded word. Find the three most "
              "frequently appeared coded words. " + text + "\n";
  s.question = "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
               "frequently appeared words in the above coded text?";
  s.answer_prefix = "Answer: According to the coded text above, the three most frequently appeared words are:";
  s.answers = {codes[0], codes[1], codes[2]};
  s.max_new_tokens = 50;
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string list_names(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

const std::vector<std::string>& word_list() {
  static const std::vector<std::string> w = split_words(kWords);
  return w;
}

const std::vector<std::string>& ruler_tasks() {
  static const std::vector<std::string> t = {"niah_single_1",   "niah_single_2",   "niah_single_3",
                                             "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
                                             "niah_multivalue", "niah_multiquery", "vt",
                                             "cwe",             "fwe"};
  return t;
}

std::vector<Sample> make_ruler_task(const std::string& task, int64_t length, int64_t num_samples, uint64_t seed,
                                    const TokenCounter& count) {
  const auto& ts = ruler_tasks();
  if (std::find(ts.begin(), ts.end(), task) == ts.end())
    throw Error("unknown RULER task '" + task + "'. Known tasks: " + list_names(ts));
  if (length <= 0) throw Error("context length must be positive (got " + std::to_string(length) + ")");
  std::vector<Sample> out;
  for (int64_t i = 0; i < num_samples; ++i) {
    const uint64_t sd = sample_seed(seed, task, length, i);
    Sample s;
    if (auto it = niah_specs().find(task); it != niah_specs().end()) {
      s = fit(length, count, [&](int64_t n) { return niah(task, it->second, sd, n, -1); });
    } else if (task == "vt") {
      s = fit(length, count, [&](int64_t n) { return vt(sd, n); });
    } else if (task == "cwe") {
      // RULER's 30/3 frequencies; lower for short contexts so that the 10 common words still fit.
      int64_t freq = 30;
      while (freq > 2 && count(cwe(sd, 0, freq).context) > length * 3 / 4) freq = freq * 2 / 3;
      s = fit(length, count, [&](int64_t n) { return cwe(sd, n, freq); });
    } else {
      s = fit(length, count, [&](int64_t n) { return fwe(sd, n); });
    }
    s.index = i;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Sample> make_needle_grid(int64_t length, const std::vector<int64_t>& depths_in, int64_t num_samples,
                                     uint64_t seed, const TokenCounter& count) {
  std::vector<int64_t> depths = depths_in;
  if (depths.empty())
    for (int64_t d = 0; d <= 100; d += 10) depths.push_back(d);
  std::vector<Sample> out;
  const NiahSpec sp{"words", "words", "numbers"};
  for (int64_t d : depths) {
    if (d < 0 || d > 100) throw Error("needle_depth must be in [0, 100] (got " + std::to_string(d) + ")");
    for (int64_t i = 0; i < num_samples; ++i) {
      const uint64_t sd = sample_seed(seed, "needle", length, i);  // same haystack and needle at every depth
      Sample s = fit(length, count, [&](int64_t n) { return niah("needle_in_haystack", sp, sd, n, d); });
      s.index = static_cast<int64_t>(out.size());
      out.push_back(std::move(s));
    }
  }
  return out;
}

std::vector<Sample> make_dataset(const DatasetRequest& r, const TokenCounter& count) {
  if (r.dataset == "ruler") {
    std::vector<Sample> out;
    for (const auto& t : r.tasks.empty() ? ruler_tasks() : r.tasks) {
      auto v = make_ruler_task(t, r.length, r.num_samples, r.seed, count);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  if (r.dataset == "needle_in_haystack") return make_needle_grid(r.length, r.depths, r.num_samples, r.seed, count);
  throw Error("unknown dataset '" + r.dataset +
              "'. Offline datasets: ruler (tasks: " + list_names(ruler_tasks()) + "), needle_in_haystack");
}

std::string ruler_postprocess(const std::string& pred) {
  auto strip = [](std::string s) {
    const auto b = s.find_first_not_of(" \t\n\r\f\v");
    if (b == std::string::npos) return std::string();
    const auto e = s.find_last_not_of(" \t\n\r\f\v");
    return s.substr(b, e - b + 1);
  };
  std::string s = strip(pred), t;
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x20) t += c;
  return strip(t);
}

double string_match_all(const std::string& pred, const std::vector<std::string>& refs) {
  if (refs.empty()) return 0.0;
  const std::string p = lower(pred);
  double hit = 0;
  for (const auto& r : refs) hit += p.find(lower(r)) != std::string::npos ? 1.0 : 0.0;
  return hit / static_cast<double>(refs.size());
}

double string_match_part(const std::string& pred, const std::vector<std::string>& refs) {
  const std::string p = lower(pred);
  for (const auto& r : refs)
    if (p.find(lower(r)) != std::string::npos) return 1.0;
  return 0.0;
}

double round2(double x) { return std::round(x * 100.0) / 100.0; }

nlohmann::json ruler_metrics(const std::vector<Sample>& rows, const std::vector<std::string>& predictions) {
  std::map<std::string, std::pair<double, int64_t>> acc;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& s = rows[i];
    const std::string key = s.depth >= 0 ? s.task + "_depth" + std::to_string(s.depth) : s.task;
    const std::string p = ruler_postprocess(predictions.at(i));
    const double v = s.task.rfind("qa", 0) == 0 ? string_match_part(p, s.answers) : string_match_all(p, s.answers);
    acc[key].first += v;
    acc[key].second += 1;
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : acc) j[k] = {{"string_match", round2(100.0 * v.first / static_cast<double>(v.second))}};
  return j;
}

}  // namespace kvf::eval
