#include "data_pipeline/sample_builder.h"

#include <algorithm>

#include "runtime/check.h"

namespace erlangshen::data {

ShardChunks chunk_shard(const std::vector<int64_t>& sent, const std::vector<int64_t>& docs, uint32_t shard_ordinal,
                        const ChunkOptions& o) {
  ShardChunks out;
  const int64_t max_tokens = std::max(2, o.seq_len - 3);
  const PhiloxKey key = derive_key(o.seed, RngPurpose::Sampling, 0, 0, 1);
  const int64_t D = static_cast<int64_t>(docs.size()) - 1;
  out.doc_sample_offsets.assign(static_cast<size_t>(D + 1), 0);
  for (int64_t d = 0; d < D; ++d) {
    const int64_t s0 = docs[d], s1 = docs[d + 1];
    PhiloxStream rng(key, (static_cast<uint64_t>(shard_ordinal) << 40) | static_cast<uint64_t>(d));
    if (s1 - s0 == 1 && !o.one_sentence_docs) {
      ++out.skipped_one_sentence_docs;
    } else {
      auto draw_target = [&] {
        double u = rng.uniform();
        uint32_t r = rng.next();
        return u < o.short_seq_prob ? 2 + static_cast<int64_t>((static_cast<uint64_t>(r) * (max_tokens - 1)) >> 32)
                                    : max_tokens;
      };
      int64_t target = draw_target(), begin = s0, len = 0;
      for (int64_t s = s0; s < s1; ++s) {
        len += sent[s + 1] - sent[s];
        if (s == s1 - 1 || len >= target) {
          if (len >= 2) out.samples.push_back({begin, static_cast<int32_t>(s + 1 - begin), static_cast<int32_t>(d)});
          else ++out.skipped_tiny_chunks;
          begin = s + 1;
          len = 0;
          target = draw_target();
        }
      }
    }
    out.doc_sample_offsets[d + 1] = static_cast<int64_t>(out.samples.size());
  }
  return out;
}

void build_sample(const ShardReader& reader, const std::vector<int32_t>& span_begins, const SampleRef& ref,
                  int seq_len, const Vocab& vocab, PhiloxStream& rng, BuiltSample& out) {
  const auto& sent = reader.sentence_offsets();
  const int64_t t0 = sent[ref.sent_begin], t1 = sent[ref.sent_begin + ref.n_sent];
  const int32_t n = static_cast<int32_t>(t1 - t0);
  thread_local std::vector<int32_t> ids;   // (n) chunk tokens
  thread_local std::vector<uint8_t> ws;    // (n)
  ids.resize(static_cast<size_t>(n));
  ws.resize(static_cast<size_t>(n));
  reader.read_tokens(t0, t1, ids.data(), ws.data());

  // split point (chunk-relative token index)
  int32_t split;
  if (ref.n_sent >= 2) {
    int64_t s = ref.sent_begin + 1 + rng.below(static_cast<uint32_t>(ref.n_sent - 1));
    split = static_cast<int32_t>(sent[s] - t0);
  } else {
    thread_local std::vector<int32_t> starts;
    starts.clear();
    for (int32_t t = 1; t < n; ++t)
      if (ws[t]) starts.push_back(t);
    split = starts.empty() ? 1 + static_cast<int32_t>(rng.below(static_cast<uint32_t>(n - 1)))
                           : starts[rng.below(static_cast<uint32_t>(starts.size()))];
  }
  // A = [a0, a1), B = [b0, b1) in chunk coordinates; truncate the longer from a random end
  int32_t a0 = 0, a1 = split, b0 = split, b1 = n;
  const int32_t max_tokens = seq_len - 3;
  uint32_t bits = 0;
  int nbits = 0;
  while ((a1 - a0) + (b1 - b0) > max_tokens) {
    if (nbits == 0) bits = rng.next(), nbits = 32;
    bool front = bits & 1;
    bits >>= 1, --nbits;
    if (a1 - a0 > b1 - b0) (front ? a0 : a1) += front ? 1 : -1;
    else (front ? b0 : b1) += front ? 1 : -1;
  }
  const bool swap = rng.next() & 1;
  out.sop_label = swap ? 1 : 0;
  int32_t first0 = swap ? b0 : a0, first1 = swap ? b1 : a1, second0 = swap ? a0 : b0, second1 = swap ? a1 : b1;

  SampleTokens& st = out.tokens;
  st.ids.clear(), st.word_start.clear(), st.special.clear(), st.spans.clear();
  out.token_types.clear();
  // chunk position -> sample position (or -1), for spans
  thread_local std::vector<int32_t> where;
  where.assign(static_cast<size_t>(n), -1);
  auto push_special = [&](int32_t id, int32_t type) {
    st.ids.push_back(id), st.word_start.push_back(0), st.special.push_back(1), out.token_types.push_back(type);
  };
  auto push_segment = [&](int32_t b, int32_t e, int32_t type) {
    for (int32_t t = b; t < e; ++t) {
      where[t] = static_cast<int32_t>(st.ids.size());
      st.ids.push_back(ids[t]);
      st.word_start.push_back(t == b ? 1 : ws[t]);  // a truncated segment starts a word
      st.special.push_back(0);
      out.token_types.push_back(type);
    }
  };
  push_special(vocab.cls_id(), 0);
  push_segment(first0, first1, 0);
  push_special(vocab.sep_id(), 0);
  push_segment(second0, second1, 1);
  push_special(vocab.sep_id(), 1);

  // knowledge spans fully inside one kept segment
  auto lo = std::lower_bound(span_begins.begin(), span_begins.end(), static_cast<int32_t>(t0));
  auto hi = std::lower_bound(lo, span_begins.end(), static_cast<int32_t>(t1));
  const int64_t k0 = lo - span_begins.begin(), k1 = hi - span_begins.begin();
  if (k1 > k0) {
    thread_local std::vector<int32_t> rows;
    rows.resize(static_cast<size_t>(k1 - k0) * 3);
    reader.read_spans(k0, k1, rows.data());
    for (int64_t k = 0; k < k1 - k0; ++k) {
      int64_t b = rows[3 * k] - t0, e = rows[3 * k + 1] - t0;
      int32_t kind = rows[3 * k + 2];
      if (b < 0 || e > n || e <= b || (kind != 1 && kind != 2)) continue;
      int32_t sb = where[b], se = where[e - 1];
      if (sb < 0 || se < 0 || se - sb != e - 1 - b) continue;  // cut by truncation or across A|B
      bool same_segment = (b >= a0 && e <= a1) || (b >= b0 && e <= b1);
      if (!same_segment) continue;
      st.spans.push_back(sb), st.spans.push_back(se + 1), st.spans.push_back(kind);
    }
  }
}

}  // namespace erlangshen::data
