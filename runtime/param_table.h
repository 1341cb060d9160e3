// The parameter table: one flat buffer per rank carved into named tensors (DESIGN §2).
//
// Each entry has a global (unsharded) shape and a tensor-parallel split axis: -1 replicated, 0 split rows
// (column-parallel output features, vocab-parallel rows), 1 split columns (row-parallel input features).
// finalize(tp_rank, tp_size) lays out the local shards back to back in insertion order, so all-reduce,
// ZeRO sharding, grad norm, checkpointing and export are each one loop over the table.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/philox.h"

namespace erlangshen {

enum class InitKind { Normal, Zeros, Ones };

struct ParamSpec {
  std::string name;                  // HF MegatronBertForPreTraining name, e.g. "bert.encoder.layer.0.ln.weight"
  std::vector<int64_t> global_shape; // unsharded shape
  int split_axis = -1;               // -1 replicated, 0 rows, 1 columns
  bool weight_decay = true;          // false for biases and LayerNorm parameters
  InitKind init = InitKind::Normal;
  double init_std = 0.02;
};

struct ParamEntry {
  ParamSpec spec;
  std::vector<int64_t> local_shape;
  int64_t local_offset = 0;  // rows/cols of the global tensor where this shard starts (along split_axis)
  size_t offset = 0;         // element offset in the flat buffer
  size_t numel = 0;          // local element count
  uint32_t site = 0;         // RNG site for init: hash of the name (layout-independent)

  int64_t global_numel() const;
  // Global flat index of local element i (row-major in both).
  int64_t global_index(int64_t i) const;
};

class ParamTable {
 public:
  void add(ParamSpec spec);
  // Computes local shapes and offsets for one TP rank. Throws if a split axis is not divisible.
  void finalize(int tp_rank, int tp_size);

  const std::vector<ParamEntry>& entries() const { return entries_; }
  const ParamEntry& at(const std::string& name) const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  size_t total() const { return total_; }   // local elements
  int tp_rank() const { return tp_rank_; }
  int tp_size() const { return tp_size_; }

 private:
  std::vector<ParamEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  size_t total_ = 0;
  int tp_rank_ = 0, tp_size_ = 1;
};

// FNV-1a hash of a parameter name (RNG site of its initialisation).
uint32_t name_site(const std::string& name);

// Fills `data` (the flat buffer, local layout) per each entry's init, keyed by global index:
// value(global index g) = normal(philox(derive_key(seed, Init, 0, 0, site), g)) * std. A TP shard therefore
// equals the slice of the unsharded tensor.
template <class T>
void initialize_parameters(const ParamTable& table, T* data, uint64_t seed);

// Standard normal from two 32-bit words (Box-Muller), as used by initialisation.
double normal_from_bits(uint32_t a, uint32_t b);

}  // namespace erlangshen
