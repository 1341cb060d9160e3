#include "data_pipeline/prefix_trie.h"

#include <algorithm>

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

namespace erlangshen::data {

void DoubleArrayTrie::build(const PrefixTrie& trie, const PayloadFn& payload) {
  struct Edge {
    int32_t parent;
    uint32_t code;
    const PrefixTrie::Step* step;
  };
  // Dense codes: labels ordered by how many edges carry them (ties by code point), starting at 1.
  std::unordered_map<char32_t, uint32_t> label_count;
  trie.for_each_edge([&](int32_t, char32_t c, const PrefixTrie::Step&) { ++label_count[c]; });
  std::vector<std::pair<uint32_t, char32_t>> labels;
  labels.reserve(label_count.size());
  for (auto [c, n] : label_count) labels.emplace_back(n, c);
  std::sort(labels.begin(), labels.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  bmp_codes_.assign(0x10000, 0);
  astral_codes_.clear();
  for (size_t k = 0; k < labels.size(); ++k) {
    const char32_t c = labels[k].second;
    if (c < 0x10000) bmp_codes_[c] = static_cast<uint32_t>(k + 1);
    else astral_codes_[c] = static_cast<uint32_t>(k + 1);
  }
  const uint32_t max_code = static_cast<uint32_t>(labels.size());

  // Children of each node, sorted by code (CSR).
  const size_t n_nodes = static_cast<size_t>(trie.num_nodes());
  std::vector<Edge> edges;
  edges.reserve(n_nodes);
  trie.for_each_edge([&](int32_t p, char32_t c, const PrefixTrie::Step& s) { edges.push_back(Edge{p, code(c), &s}); });
  std::sort(edges.begin(), edges.end(),
            [](const Edge& a, const Edge& b) { return a.parent != b.parent ? a.parent < b.parent : a.code < b.code; });
  std::vector<uint32_t> first(n_nodes + 1, 0);
  for (const Edge& e : edges) ++first[static_cast<size_t>(e.parent) + 1];
  for (size_t i = 0; i < n_nodes; ++i) first[i + 1] += first[i];

  units_.clear();
  std::vector<int32_t> unit_of(n_nodes, -1);
  std::vector<uint8_t> used;
  // nxt[i]: for a used unit, a hint towards the next free unit after it (path-compressed).
  std::vector<int32_t> nxt;
  auto ensure = [&](size_t n) {
    if (n > units_.size()) {
      size_t c = std::max(n, units_.size() * 3 / 2 + 4096);
      units_.resize(c, Unit{-1, 0, 0.0});
      used.resize(c, 0);
      size_t old = nxt.size();
      nxt.resize(c + 1);
      for (size_t k = old; k < nxt.size(); ++k) nxt[k] = static_cast<int32_t>(k);
    }
  };
  ensure(max_code + 2);
  units_[0] = Unit{-2, 0, 0.0};
  used[0] = 1;
  nxt[0] = 1;
  unit_of[0] = 0;
  auto find_free = [&](size_t i) {
    size_t r = i;
    while (r < units_.size() && used[r]) r = static_cast<size_t>(nxt[r]);
    while (i != r && i < units_.size()) {  // compress
      size_t n = static_cast<size_t>(nxt[i]);
      nxt[i] = static_cast<int32_t>(r);
      i = n;
    }
    return r;
  };
  auto occupy = [&](size_t i) {
    used[i] = 1;
    nxt[i] = static_cast<int32_t>(i + 1);
  };
  std::vector<int32_t> queue{0};

  size_t head_free = 1, multi_head = 1;
  std::vector<size_t> tried;
  for (size_t q = 0; q < queue.size(); ++q) {
    const int32_t node = queue[q];
    const int32_t s = unit_of[static_cast<size_t>(node)];
    const uint32_t b = first[static_cast<size_t>(node)], e = first[static_cast<size_t>(node) + 1];
    uint32_t base = 0;
    if (b < e) {
      const uint32_t c0 = edges[b].code;
      head_free = find_free(head_free);
      // A single child fits the first free unit; several start from multi_head, which moves past the free units
      // that keep rejecting (the holes are left to single children), so the search stays short.
      size_t p = find_free(std::max<size_t>(e - b == 1 ? head_free : std::max(head_free, multi_head), c0));
      tried.clear();
      for (;; p = find_free(p + 1)) {
        ensure(p + max_code + 2);
        base = static_cast<uint32_t>(p - c0);
        bool ok = true;
        for (uint32_t k = b + 1; k < e && ok; ++k) ok = !used[base + edges[k].code];
        if (ok) break;
        tried.push_back(p);
      }
      if (tried.size() > 16) multi_head = std::max(multi_head, tried[tried.size() - 16]);
      for (uint32_t k = b; k < e; ++k) {
        const size_t t = base + edges[k].code;
        occupy(t);
        int32_t tag = 0;
        double weight = 0;
        payload(*edges[k].step, tag, weight);
        units_[t] = Unit{s, static_cast<uint32_t>(tag & 3), weight};
        unit_of[static_cast<size_t>(edges[k].step->node)] = static_cast<int32_t>(t);
        queue.push_back(edges[k].step->node);

      }
    }
    units_[static_cast<size_t>(s)].base_tag |= base << 2;
  }
  // Trim to the last used unit plus room for any code.
  size_t last = units_.size();
  while (last > 0 && !used[last - 1]) --last;
  units_.resize(last + max_code + 1, Unit{-1, 0, 0.0});
  units_.shrink_to_fit();
}

}  // namespace erlangshen::data
