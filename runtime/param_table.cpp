#include "runtime/param_table.h"

#include <cmath>

#include "runtime/check.h"

namespace erlangshen {

int64_t ParamEntry::global_numel() const {
  int64_t n = 1;
  for (auto d : spec.global_shape) n *= d;
  return n;
}

int64_t ParamEntry::global_index(int64_t i) const {
  if (spec.split_axis < 0) return i;
  const auto& g = spec.global_shape;
  if (spec.split_axis == 0) {
    int64_t row_size = static_cast<int64_t>(numel) / local_shape[0];
    return local_offset * row_size + i;
  }
  // split columns of a 2-D tensor
  const int64_t local_cols = local_shape[1];
  const int64_t row = i / local_cols, col = i % local_cols;
  return row * g[1] + local_offset + col;
}

void ParamTable::add(ParamSpec spec) {
  ERL_CHECK(!index_.count(spec.name), "duplicate parameter " << spec.name);
  ERL_CHECK(spec.split_axis < static_cast<int>(spec.global_shape.size()), "bad split axis for " << spec.name);
  ERL_CHECK(spec.split_axis != 1 || spec.global_shape.size() == 2, "column split needs a 2-D tensor: " << spec.name);
  index_[spec.name] = entries_.size();
  ParamEntry e;
  e.site = name_site(spec.name);
  e.spec = std::move(spec);
  entries_.push_back(std::move(e));
}

void ParamTable::finalize(int tp_rank, int tp_size) {
  tp_rank_ = tp_rank;
  tp_size_ = tp_size;
  size_t offset = 0;
  for (auto& e : entries_) {
    e.local_shape = e.spec.global_shape;
    e.local_offset = 0;
    if (e.spec.split_axis >= 0) {
      int64_t dim = e.spec.global_shape[e.spec.split_axis];
      if (dim % tp_size != 0)
        throw Error("parameter " + e.spec.name + ": dimension " + std::to_string(dim) +
                    " is not divisible by parallel.tp = " + std::to_string(tp_size));
      e.local_shape[e.spec.split_axis] = dim / tp_size;
      e.local_offset = dim / tp_size * tp_rank;
    }
    size_t n = 1;
    for (auto d : e.local_shape) n *= static_cast<size_t>(d);
    e.numel = n;
    e.offset = offset;
    offset += n;  // back to back: fused QKV relies on query/key/value shards being contiguous
  }
  total_ = offset;
}

const ParamEntry& ParamTable::at(const std::string& name) const {
  auto it = index_.find(name);
  ERL_CHECK(it != index_.end(), "unknown parameter " << name);
  return entries_[it->second];
}

uint32_t name_site(const std::string& name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

double normal_from_bits(uint32_t a, uint32_t b) {
  // u1 in (0, 1], u2 in [0, 1)
  const double u1 = (static_cast<double>(a) + 1.0) / 4294967296.0;
  const double u2 = static_cast<double>(b) / 4294967296.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

template <class T>
void initialize_parameters(const ParamTable& table, T* data, uint64_t seed) {
  for (const auto& e : table.entries()) {
    T* p = data + e.offset;
    const int64_t n = static_cast<int64_t>(e.numel);
    switch (e.spec.init) {
      case InitKind::Zeros:
        for (int64_t i = 0; i < n; ++i) p[i] = T(0);
        break;
      case InitKind::Ones:
        for (int64_t i = 0; i < n; ++i) p[i] = T(1);
        break;
      case InitKind::Normal: {
        const PhiloxKey key = derive_key(seed, RngPurpose::Init, 0, 0, e.site);
        const double std = e.spec.init_std;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
          const int64_t g = e.global_index(i);
          Philox4 r = philox_at(key, static_cast<uint64_t>(g));
          p[i] = static_cast<T>(std * normal_from_bits(r.v[0], r.v[1]));
        }
        break;
      }
    }
  }
}

template void initialize_parameters<float>(const ParamTable&, float*, uint64_t);
template void initialize_parameters<double>(const ParamTable&, double*, uint64_t);

}  // namespace erlangshen
