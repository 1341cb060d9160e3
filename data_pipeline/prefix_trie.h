// A trie over code points: node 0 is the root; children of the root sit in a direct table for the Basic
// Multilingual Plane, deeper edges in an open-addressing hash table keyed by (node, code point). Each node's
// payload (a tag and a weight, e.g. "is a word" and its log-probability) is stored with the edge that leads to
// it, so a walk touches one cache line per character.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace erlangshen::data {

class PrefixTrie {
 public:
  static constexpr int32_t kNone = -1;
  struct Step {
    int32_t node = kNone;  // kNone: no such child
    int32_t tag = 0;
    double weight = 0;
  };
  PrefixTrie();
  // Inserts every prefix of `word`; returns the node of the whole word (the root for an empty word).
  int32_t insert(std::u32string_view word);
  // Child of `node` along `c` with its payload.
  const Step& step(int32_t node, char32_t c) const {
    if (node == 0 && c < 0x10000) return root_[c];
    return lookup(key(node, c));
  }
  int32_t child(int32_t node, char32_t c) const { return step(node, c).node; }
  // Node of `word` (kNone when absent) and its payload for update; `word` must be non-empty and present.
  Step* find_step(std::u32string_view word);
  int32_t find(std::u32string_view word) const;
  // Calls f(Step&) for every node except the root.
  template <typename F>
  void for_each_node(F&& f) {
    for (Step& s : root_)
      if (s.node != kNone) f(s);
    for (Slot& s : slots_)
      if (s.key != kEmpty) f(s.step);
  }
  // Hints the cache about a later step(node, c) (segmentation walks many independent positions).
  void prefetch(int32_t node, char32_t c) const {
    if (node > 0 || (node == 0 && c >= 0x10000)) __builtin_prefetch(&slots_[mix(key(node, c)) & (slots_.size() - 1)]);
  }
  int32_t num_nodes() const { return num_nodes_; }

 private:
  static uint64_t key(int32_t node, char32_t c) { return (static_cast<uint64_t>(node) << 21) | c; }
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  const Step& lookup(uint64_t k) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = mix(k) & mask;; i = (i + 1) & mask) {
      if (slots_[i].key == k || slots_[i].key == kEmpty) return slots_[i].step;  // empty slots hold node kNone
    }
  }
  void grow();
  static constexpr uint64_t kEmpty = ~0ULL;
  struct Slot {
    uint64_t key;
    Step step;
  };
  std::vector<Step> root_;   // (0x10000) child of the root per BMP code point
  std::vector<Slot> slots_;  // open addressing, power-of-two capacity, load <= 1/2
  size_t used_ = 0;
  int32_t num_nodes_ = 1;
};

}  // namespace erlangshen::data
