#include "model/synthetic_batch.h"

#include "runtime/philox.h"

namespace erlangshen {

PretrainBatch make_synthetic_batch(int B, int T, int vocab, double mask_prob, uint64_t seed, int64_t step,
                                   int64_t sample_base, bool full_length) {
  constexpr int kCls = 101, kSep = 102, kMask = 103, kFirstId = 104;
  PretrainBatch b;
  b.batch = B;
  b.seq_len = T;
  b.input_ids.assign(static_cast<size_t>(B) * T, 0);
  b.token_types.assign(static_cast<size_t>(B) * T, 0);
  b.attention_mask.assign(static_cast<size_t>(B) * T, 0);
  b.sop_labels.resize(B);
  b.sample_ids.resize(B);
  const PhiloxKey key = derive_key(seed, RngPurpose::Test, static_cast<uint64_t>(step), 0, 0);
  for (int s = 0; s < B; ++s) {
    const int64_t id = sample_base + s;
    b.sample_ids[s] = id;
    auto draw = [&](int64_t i) { return philox_at(key, static_cast<uint64_t>(id) * 4096 + i); };
    const Philox4 head = draw(0);
    const int len = full_length ? T : T / 2 + static_cast<int>(head.v[0] % static_cast<uint32_t>(T - T / 2 + 1));
    const int split = 1 + static_cast<int>(head.v[1] % static_cast<uint32_t>(std::max(1, len - 3)));
    b.sop_labels[s] = head.v[2] & 1;
    int32_t* ids = b.input_ids.data() + static_cast<size_t>(s) * T;
    int32_t* types = b.token_types.data() + static_cast<size_t>(s) * T;
    uint8_t* valid = b.attention_mask.data() + static_cast<size_t>(s) * T;
    for (int t = 0; t < len; ++t) {
      const Philox4 r = draw(1 + t);
      int32_t tok = kFirstId + static_cast<int32_t>(r.v[0] % static_cast<uint32_t>(vocab - kFirstId));
      if (t == 0) tok = kCls;
      else if (t == split || t == len - 1) tok = kSep;
      types[t] = t > split ? 1 : 0;
      valid[t] = 1;
      const bool special = t == 0 || t == split || t == len - 1;
      if (!special && uniform_from_bits(r.v[1]) < mask_prob) {
        b.mlm_positions.push_back(s * T + t);
        b.mlm_labels.push_back(tok);
        tok = kMask;
      }
      ids[t] = tok;
    }
  }
  return b;
}

}  // namespace erlangshen
