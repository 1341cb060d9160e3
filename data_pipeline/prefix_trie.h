// A trie over code points: node 0 is the root; children of the root sit in a direct table for the Basic
// Multilingual Plane, deeper edges in an open-addressing hash table keyed by (node, code point). Callers keep
// per-node payloads in their own arrays indexed by node id.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace erlangshen::data {

class PrefixTrie {
 public:
  static constexpr int32_t kNone = -1;
  PrefixTrie();
  // Inserts every prefix of `word`; returns the node of the whole word (the root for an empty word).
  int32_t insert(std::u32string_view word);
  // Child of `node` along `c`, or kNone.
  int32_t child(int32_t node, char32_t c) const {
    if (node == 0 && c < 0x10000) return root_[c];
    return lookup(key(node, c));
  }
  // Hints the cache about a later child(node, c) (segmentation walks many independent positions).
  void prefetch(int32_t node, char32_t c) const {
    if (node > 0 || (node == 0 && c >= 0x10000)) __builtin_prefetch(&slots_[mix(key(node, c)) & (slots_.size() - 1)]);
  }
  // Node of `word`, or kNone.
  int32_t find(std::u32string_view word) const;
  int32_t num_nodes() const { return num_nodes_; }

 private:
  static uint64_t key(int32_t node, char32_t c) { return (static_cast<uint64_t>(node) << 21) | c; }
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  int32_t lookup(uint64_t k) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = mix(k) & mask;; i = (i + 1) & mask) {
      if (slots_[i].key == k) return slots_[i].val;
      if (slots_[i].key == kEmpty) return kNone;
    }
  }
  void grow();
  static constexpr uint64_t kEmpty = ~0ULL;
  struct Slot {  // key and value side by side: one cache line per probe
    uint64_t key;
    int32_t val;
  };
  std::vector<int32_t> root_;  // (0x10000) child of the root per BMP code point
  std::vector<Slot> slots_;    // open addressing, power-of-two capacity, load <= 1/2
  size_t used_ = 0;
  int32_t num_nodes_ = 1;
};

}  // namespace erlangshen::data
