// Tries over code points.
//
// PrefixTrie is the mutable form (insertions, lookups by word): node 0 is the root; children of the root sit in a
// direct table for the Basic Multilingual Plane, deeper edges in an open-addressing hash table keyed by
// (node, code point). Each node's payload (a tag and a weight) is stored with the edge that leads to it.
//
// DoubleArrayTrie is the read-only form used by the hot walks (segmentation DAG, lexicon matching, WordPiece):
// built from a PrefixTrie with code points mapped to dense codes (the most frequent edge labels first, so the
// root's children and the busy nodes sit together), one 16-byte unit per node holding base, parent check and
// payload: a step is one load of units[base(s) + code] (no hashing, no probe sequence). On jieba's dictionary
// (498k nodes, 12k distinct characters) the array has ~1.37M units (~22 MB; wide code spans leave holes).
#pragma once
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <new>
#include <string_view>
#include <unordered_map>
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
  // Calls f(parent, c, const Step&) for every edge.
  template <typename F>
  void for_each_edge(F&& f) const {
    for (size_t c = 0; c < root_.size(); ++c)
      if (root_[c].node != kNone) f(0, static_cast<char32_t>(c), root_[c]);
    for (const Slot& s : slots_)
      if (s.key != kEmpty) f(static_cast<int32_t>(s.key >> 21), static_cast<char32_t>(s.key & 0x1FFFFF), s.step);
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

// Allocator placing large arrays on transparent huge pages (where the kernel allows it with madvise): the
// walks probe a multi-megabyte array at random, and 4 KiB pages would make most probes a TLB miss too.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return static_cast<T*>(::operator new(bytes));
    void* p = std::aligned_alloc(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
    if (!p) throw std::bad_alloc();
    madvise(p, (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < (size_t{2} << 20)) ::operator delete(p);
    else std::free(p);
  }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

class DoubleArrayTrie {
 public:
  struct Unit {
    int32_t check;      // unit of the parent; -1 for a free unit, -2 for the root
    uint32_t base_tag;  // base << 2 | tag
    double weight;
  };
  static constexpr int32_t kRoot = 0;
  // Payload of a PrefixTrie node given the edge leading to it (never called for the root).
  using PayloadFn = std::function<void(const PrefixTrie::Step& edge, int32_t& tag, double& weight)>;
  // Builds from `trie`; tags must be in [0, 3].
  void build(const PrefixTrie& trie, const PayloadFn& payload);
  bool empty() const { return units_.empty(); }
  // Dense code of `c`; 0 for a character on no edge (which then has no child anywhere).
  uint32_t code(char32_t c) const {
    if (c < 0x10000) return bmp_codes_[c];
    auto it = astral_codes_.find(c);
    return it == astral_codes_.end() ? 0 : it->second;
  }
  // Child unit of unit `s` along `code`, or -1.
  int32_t child(int32_t s, uint32_t code) const {
    const int32_t t = static_cast<int32_t>((units_[static_cast<size_t>(s)].base_tag >> 2) + code);
    return units_[static_cast<size_t>(t)].check == s ? t : -1;
  }
  const Unit& unit(int32_t s) const { return units_[static_cast<size_t>(s)]; }
  static int32_t tag(const Unit& u) { return static_cast<int32_t>(u.base_tag & 3); }
  void prefetch(int32_t s, uint32_t code) const {
    __builtin_prefetch(&units_[(units_[static_cast<size_t>(s)].base_tag >> 2) + code]);
  }
  size_t num_units() const { return units_.size(); }

 private:
  std::vector<Unit, HugePageAllocator<Unit>> units_;  // padded so base + any code is in range
  std::vector<uint32_t> bmp_codes_;   // (0x10000)
  std::unordered_map<char32_t, uint32_t> astral_codes_;
};

}  // namespace erlangshen::data
