#include "data_pipeline/masker.h"

#include <algorithm>
#include <cmath>

#include "runtime/check.h"

namespace erlangshen::data {

MaskMode parse_mask_mode(const std::string& s) {
  if (s == "kdm") return MaskMode::Kdm;
  if (s == "wwm") return MaskMode::Wwm;
  if (s == "token") return MaskMode::Token;
  throw Error("data.masking must be kdm, wwm or token (got '" + s + "')");
}

Masker::Masker(const Vocab& vocab, MaskOptions options) : vocab_(vocab), opt_(options) {
  if (vocab.replacement_ids().empty()) throw Error("vocabulary " + vocab.name() + " has only special tokens");
  if (opt_.mode == MaskMode::Wwm) opt_.knowledge_share = 0.0;
  opt_.max_ngram = std::clamp(opt_.max_ngram, 1, 16);
  double z = 0;
  for (int n = 1; n <= opt_.max_ngram; ++n) z += 1.0 / n;
  double c = 0;
  for (int n = 1; n <= 16; ++n) {
    if (n <= opt_.max_ngram) c += 1.0 / n / z;
    ngram_cdf_[n - 1] = n >= opt_.max_ngram ? 1.0 : c;
  }
}

void Masker::mask(SampleTokens& s, PhiloxStream& rng, MaskResult& out) const {
  out.clear();
  const int32_t L = static_cast<int32_t>(s.ids.size());
  thread_local std::vector<uint8_t> covered;  // (L) 1 = chosen; 2 = chosen from a knowledge span
  covered.assign(static_cast<size_t>(L), 0);
  int32_t real = 0;
  for (int32_t t = 0; t < L; ++t) real += s.special[t] ? 0 : 1;
  const int32_t budget = static_cast<int32_t>(std::floor(real * opt_.mask_prob + rng.uniform()));
  out.budget = budget;
  int32_t masked = 0;
  auto take = [&](int32_t b, int32_t e, uint8_t mark) {
    for (int32_t t = b; t < e; ++t) covered[t] = mark;
    masked += e - b;
  };

  if (opt_.mode == MaskMode::Token) {
    thread_local std::vector<int32_t> cand;
    cand.clear();
    for (int32_t t = 0; t < L; ++t)
      if (!s.special[t]) cand.push_back(t);
    rng.shuffle(cand.data(), cand.size());
    for (int32_t i = 0; i < budget && i < static_cast<int32_t>(cand.size()); ++i) {
      take(cand[i], cand[i] + 1, 1);
      out.units.push_back({cand[i], cand[i] + 1, 0, 1, 1});
    }
  } else {
    // 1) whole knowledge spans, up to knowledge_share of the budget
    const int32_t kspans = static_cast<int32_t>(s.spans.size() / 3);
    if (opt_.knowledge_share > 0 && kspans > 0) {
      const int32_t kbudget = static_cast<int32_t>(std::floor(budget * opt_.knowledge_share + rng.uniform()));
      thread_local std::vector<int32_t> order;
      order.resize(static_cast<size_t>(kspans));
      for (int32_t i = 0; i < kspans; ++i) order[i] = i;
      rng.shuffle(order.data(), order.size());
      int32_t shortest = -1;  // the shortest span that did not fit (first in the random order)
      for (int32_t i : order) {
        int32_t b = s.spans[3 * i], e = s.spans[3 * i + 1];
        if (masked + (e - b) > kbudget) {
          if (shortest < 0 || e - b < s.spans[3 * shortest + 1] - s.spans[3 * shortest]) shortest = i;
          continue;
        }
        take(b, e, 2);
        out.units.push_back({b, e, static_cast<uint8_t>(s.spans[3 * i + 2]), 1, 1});
      }
      // r tokens of the knowledge budget are left and every remaining span is longer: take the shortest one with
      // probability r / length, so the expected number of knowledge tokens is the knowledge budget.
      const int32_t r = kbudget - masked;
      if (r > 0 && shortest >= 0) {
        int32_t b = s.spans[3 * shortest], e = s.spans[3 * shortest + 1];
        if (masked + (e - b) <= budget && rng.uniform() * (e - b) < r) {
          take(b, e, 2);
          out.units.push_back({b, e, static_cast<uint8_t>(s.spans[3 * shortest + 2]), 1, 1});
        }
      }
    }
    // 2) whole-word n-grams
    thread_local std::vector<int32_t> wb, we, order;  // (W) word begin / end; candidate order
    wb.clear(), we.clear();
    for (int32_t t = 0; t < L; ++t) {
      if (s.special[t]) continue;
      if (s.word_start[t] || wb.empty() || s.special[t - 1]) {
        wb.push_back(t);
        we.push_back(t + 1);
      } else {
        we.back() = t + 1;
      }
    }
    const int32_t W = static_cast<int32_t>(wb.size());
    order.resize(static_cast<size_t>(W));
    for (int32_t i = 0; i < W; ++i) order[i] = i;
    rng.shuffle(order.data(), order.size());
    for (int32_t i : order) {
      if (masked >= budget) break;
      double u = rng.uniform();
      int n = 1;
      while (n < opt_.max_ngram && u >= ngram_cdf_[n - 1]) ++n;
      const int n_drawn = n;
      ++out.ngram_drawn[n_drawn];
      // words i .. i+n-1 must be contiguous (no [SEP] between)
      int avail = 1;
      while (avail < n && i + avail < W && wb[i + avail] == we[i + avail - 1]) ++avail;
      n = std::min(n, avail);
      while (n > 1 && masked + (we[i + n - 1] - wb[i]) > budget) --n;
      const int32_t b = wb[i], e = we[i + n - 1];
      if (masked + (e - b) > budget) continue;
      bool any = false;
      for (int32_t t = b; t < e && !any; ++t) any = covered[t] != 0;
      if (any) continue;
      take(b, e, 1);
      out.units.push_back({b, e, 0, static_cast<uint8_t>(n_drawn), static_cast<uint8_t>(n)});
    }
  }
  // 80 / 10 / 10 replacement, positions ascending
  const auto& repl = vocab_.replacement_ids();
  for (int32_t t = 0; t < L; ++t) {
    if (!covered[t]) continue;
    out.positions.push_back(t);
    out.labels.push_back(s.ids[t]);
    out.knowledge.push_back(covered[t] == 2 ? 1 : 0);
    double u = rng.uniform();
    if (u < 0.8) s.ids[t] = vocab_.mask_id();
    else if (u < 0.9) s.ids[t] = repl[rng.below(static_cast<uint32_t>(repl.size()))];
  }
}

}  // namespace erlangshen::data
