#include "data_pipeline/prefix_trie.h"

namespace erlangshen::data {

PrefixTrie::PrefixTrie() : root_(0x10000, kNone), keys_(1 << 12, kEmpty), vals_(1 << 12, kNone) {}

void PrefixTrie::grow() {
  std::vector<uint64_t> old_keys(keys_.size() * 2, kEmpty);
  std::vector<int32_t> old_vals(vals_.size() * 2, kNone);
  old_keys.swap(keys_);
  old_vals.swap(vals_);
  size_t mask = keys_.size() - 1;
  for (size_t j = 0; j < old_keys.size(); ++j) {
    if (old_keys[j] == kEmpty) continue;
    size_t i = mix(old_keys[j]) & mask;
    while (keys_[i] != kEmpty) i = (i + 1) & mask;
    keys_[i] = old_keys[j];
    vals_[i] = old_vals[j];
  }
}

int32_t PrefixTrie::insert(std::u32string_view word) {
  int32_t node = 0;
  for (char32_t c : word) {
    int32_t next = child(node, c);
    if (next == kNone) {
      next = num_nodes_++;
      if (node == 0 && c < 0x10000) {
        root_[c] = next;
      } else {
        if ((used_ + 1) * 2 > keys_.size()) grow();
        uint64_t k = key(node, c);
        size_t mask = keys_.size() - 1;
        size_t i = mix(k) & mask;
        while (keys_[i] != kEmpty) i = (i + 1) & mask;
        keys_[i] = k;
        vals_[i] = next;
        ++used_;
      }
    }
    node = next;
  }
  return node;
}

int32_t PrefixTrie::find(std::u32string_view word) const {
  int32_t node = 0;
  for (char32_t c : word) {
    node = child(node, c);
    if (node == kNone) return kNone;
  }
  return node;
}

}  // namespace erlangshen::data
