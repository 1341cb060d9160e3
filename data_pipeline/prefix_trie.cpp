#include "data_pipeline/prefix_trie.h"

namespace erlangshen::data {

PrefixTrie::PrefixTrie() : root_(0x10000), slots_(1 << 12, Slot{kEmpty, Step{}}) {}

void PrefixTrie::grow() {
  std::vector<Slot> old(slots_.size() * 2, Slot{kEmpty, Step{}});
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = mix(s.key) & mask;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

int32_t PrefixTrie::insert(std::u32string_view word) {
  int32_t node = 0;
  for (char32_t c : word) {
    int32_t next = child(node, c);
    if (next == kNone) {
      next = num_nodes_++;
      if (node == 0 && c < 0x10000) {
        root_[c].node = next;
      } else {
        if ((used_ + 1) * 2 > slots_.size()) grow();
        uint64_t k = key(node, c);
        size_t mask = slots_.size() - 1;
        size_t i = mix(k) & mask;
        while (slots_[i].key != kEmpty) i = (i + 1) & mask;
        slots_[i].key = k;
        slots_[i].step = Step{next, 0, 0.0};
        ++used_;
      }
    }
    node = next;
  }
  return node;
}

PrefixTrie::Step* PrefixTrie::find_step(std::u32string_view word) {
  int32_t node = 0;
  Step* s = nullptr;
  for (char32_t c : word) {
    s = const_cast<Step*>(&step(node, c));
    if (s->node == kNone) return nullptr;
    node = s->node;
  }
  return s;
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
