#include "checkpoint/reader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/crc32c.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace fs = std::filesystem;

namespace {

// A tensor of up to 2 dims seen as (rows, cols): (n) -> (n, 1).
struct Dims2 {
  int64_t rows, cols;
};

Dims2 dims2(const std::vector<int64_t>& shape, const std::string& name) {
  if (shape.size() == 1) return {shape[0], 1};
  if (shape.size() == 2) return {shape[0], shape[1]};
  throw Error("tensor " + name + ": only 1-D and 2-D tensors can be re-sharded");
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Tensors whose rows are the (padded) vocabulary.
bool is_vocab_rows(const std::string& name) {
  return name == "bert.embeddings.word_embeddings.weight" || name == "cls.predictions.bias";
}

float padding_fill(const std::string& name, TensorKind kind) {
  return (kind == TensorKind::Param && name == "cls.predictions.bias") ? kPaddedLogitBias : 0.0f;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Runs body(i) for i in [0, n) on the OpenMP threads; rethrows the first error.
template <class F>
void parallel_for_each(size_t n, F body) {
  std::string error;
  std::mutex mu;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (error.empty()) error = e.what();
    }
  }
  if (!error.empty()) throw Error(error);
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& path) : folder_(resolve_checkpoint(path)) {
  manifest_ = Manifest::load(folder_);
  for (const auto& f : manifest_.files) {
    const std::string p = (fs::path(folder_) / f.name).string();
    auto reader = std::make_unique<SafetensorsReader>(p);
    if (reader->file_size() != f.bytes)
      throw Error(p + ": size " + std::to_string(reader->file_size()) + " bytes, the manifest says " +
                  std::to_string(f.bytes) + " (truncated or replaced)");
    files_[f.name] = std::move(reader);
  }
  for (const auto& r : manifest_.tensors) {
    auto it = files_.find(r.file);
    if (it == files_.end()) throw Error(folder_ + "/manifest.json: tensor " + r.key + " names unlisted file " + r.file);
    uint32_t crc = 0;
    if (!it->second->stored_crc(r.key, &crc) || crc32c_hex(crc) != r.crc32c)
      throw Error(it->second->path() + ": checksum of " + r.key + " differs from the manifest (file replaced?)");
    index_[{static_cast<int>(r.kind), r.name}].push_back(&r);
  }
}

bool CheckpointReader::has(const std::string& name, TensorKind kind) const {
  return index_.count({static_cast<int>(kind), name}) != 0;
}

const std::vector<const TensorRecord*>& CheckpointReader::pieces(const std::string& name, TensorKind kind) const {
  auto it = index_.find({static_cast<int>(kind), name});
  if (it == index_.end())
    throw Error("checkpoint " + folder_ + " has no " + kind_name(kind) + " for tensor " + name);
  return it->second;
}

std::vector<int64_t> CheckpointReader::global_shape(const std::string& name) const {
  return pieces(name, TensorKind::Param).front()->global_shape;
}

std::vector<float> CheckpointReader::read_local(const std::string& name, TensorKind kind, int tp_rank) const {
  std::vector<const TensorRecord*> mine;
  for (const TensorRecord* r : pieces(name, kind))
    if (r->tp_rank == tp_rank) mine.push_back(r);
  if (mine.empty())
    throw Error("checkpoint " + folder_ + ": no " + kind_name(kind) + " of " + name + " for TP rank " +
                std::to_string(tp_rank));
  std::sort(mine.begin(), mine.end(), [](const TensorRecord* a, const TensorRecord* b) {
    return a->range_begin != b->range_begin ? a->range_begin < b->range_begin : a->dp_rank < b->dp_rank;
  });
  const int64_t numel = numel_of(mine.front()->local_shape);
  std::vector<float> local(static_cast<size_t>(numel));
  int64_t pos = 0;
  for (const TensorRecord* r : mine) {
    if (r->range_end <= pos) continue;  // a duplicate copy (replicated optimizer state)
    if (r->range_begin != pos)
      throw Error("checkpoint " + folder_ + ": " + kind_name(kind) + " of " + name + " (TP rank " +
                  std::to_string(tp_rank) + ") has a gap or overlap at element " + std::to_string(pos));
    files_.at(r->file)->read_f32(r->key, local.data() + r->range_begin);
    pos = r->range_end;
  }
  if (pos != numel)
    throw Error("checkpoint " + folder_ + ": " + kind_name(kind) + " of " + name + " (TP rank " +
                std::to_string(tp_rank) + ") is incomplete: " + std::to_string(pos) + " of " + std::to_string(numel) +
                " elements");
  return local;
}

std::vector<float> CheckpointReader::read_global(const std::string& name, TensorKind kind) const {
  const TensorRecord& first = *pieces(name, kind).front();
  if (first.split_axis < 0) return read_local(name, kind, 0);
  const Dims2 g = dims2(first.global_shape, name);
  std::vector<float> global(static_cast<size_t>(g.rows * g.cols));
  for (int r = 0; r < manifest_.tp; ++r) {
    const std::vector<float> local = read_local(name, kind, r);
    const TensorRecord* rec = nullptr;
    for (const TensorRecord* p : pieces(name, kind))
      if (p->tp_rank == r) rec = p;
    const Dims2 l = dims2(rec->local_shape, name);
    if (first.split_axis == 0) {
      std::memcpy(global.data() + rec->local_offset * g.cols, local.data(), local.size() * sizeof(float));
    } else {
      for (int64_t i = 0; i < l.rows; ++i)
        std::memcpy(global.data() + i * g.cols + rec->local_offset, local.data() + i * l.cols, l.cols * sizeof(float));
    }
  }
  return global;
}

void CheckpointReader::read_into_entry(const ParamTable& table, const ParamEntry& e, TensorKind kind, float* dst,
                                       LoadReport& report) const {
  const std::string& name = e.spec.name;
  const auto& all = pieces(name, kind);
  const TensorRecord& first = *all.front();
  const std::vector<int64_t>& saved = first.global_shape;
  const std::vector<int64_t>& wanted = e.spec.global_shape;
  bool compatible = saved.size() == wanted.size();
  for (size_t d = 0; compatible && d < saved.size(); ++d)
    compatible = saved[d] == wanted[d] || (d == 0 && is_vocab_rows(name));
  if (!compatible)
    throw Error("checkpoint " + folder_ + ": tensor " + name + " has shape " + shape_str(saved) + ", the model needs " +
                shape_str(wanted));

  // Same layout: this rank's saved shard is exactly the shard wanted.
  const bool same = saved == wanted && first.split_axis == e.spec.split_axis &&
                    (e.spec.split_axis < 0 || manifest_.tp == table.tp_size());
  if (same) {
    const int rank = e.spec.split_axis < 0 ? 0 : table.tp_rank();
    for (const TensorRecord* r : all) {
      if (r->tp_rank == rank && r->range_begin == 0 && r->range_end == static_cast<int64_t>(e.numel)) {
        files_.at(r->file)->read_f32(r->key, dst);
        return;
      }
    }
    const std::vector<float> local = read_local(name, kind, rank);
    std::memcpy(dst, local.data(), e.numel * sizeof(float));
    return;
  }

  // Re-shard: rebuild the saved global tensor, cut out this rank's shard, fill or drop vocab padding rows.
  const std::vector<float> global = read_global(name, kind);
  const Dims2 g = dims2(saved, name), gw = dims2(wanted, name), l = dims2(e.local_shape, name);
  const int64_t row0 = e.spec.split_axis == 0 ? e.local_offset : 0;
  const int64_t col0 = e.spec.split_axis == 1 ? e.local_offset : 0;
  const float fill = padding_fill(name, kind);
  int64_t filled = 0;
  for (int64_t i = 0; i < l.rows; ++i) {
    float* out = dst + i * l.cols;
    const int64_t row = row0 + i;
    if (row < g.rows) {
      std::memcpy(out, global.data() + row * g.cols + col0, l.cols * sizeof(float));
    } else {
      std::fill(out, out + l.cols, fill);
      ++filled;
    }
  }
  if (kind == TensorKind::Param && name == "bert.embeddings.word_embeddings.weight") {
    report.padding_rows_added += filled;
    if (table.tp_rank() == 0 && g.rows > gw.rows) report.padding_rows_dropped += g.rows - gw.rows;
  }
}

LoadReport CheckpointReader::load_params(const ParamTable& table, float* params, bool allow_missing) const {
  LoadReport report;
  report.same_layout = manifest_.tp == table.tp_size();
  const auto& entries = table.entries();
  std::vector<LoadReport> parts(entries.size());
  std::vector<char> present(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    present[i] = has(entries[i].spec.name);
    if (!present[i]) report.missing.push_back(entries[i].spec.name);
  }
  if (!report.missing.empty() && !allow_missing)
    throw Error("checkpoint " + folder_ + " lacks " + std::to_string(report.missing.size()) + " tensor(s) of the model, e.g. " +
                report.missing.front() + " (saved with heads '" + manifest_.heads + "')");
  parallel_for_each(entries.size(), [&](size_t i) {
    if (present[i]) read_into_entry(table, entries[i], TensorKind::Param, params + entries[i].offset, parts[i]);
  });
  for (size_t i = 0; i < entries.size(); ++i) {
    report.padding_rows_added += parts[i].padding_rows_added;
    report.padding_rows_dropped += parts[i].padding_rows_dropped;
    if (present[i]) report.bytes_read += entries[i].numel * sizeof(float);
  }
  for (const auto& [key, list] : index_)
    if (key.first == static_cast<int>(TensorKind::Param) && !table.contains(key.second)) report.unused.push_back(key.second);
  return report;
}

LoadReport CheckpointReader::load_optimizer(const ParamTable& table, size_t begin, size_t end, float* exp_avg,
                                            float* exp_avg_sq) const {
  LoadReport report;
  const auto& entries = table.entries();
  std::vector<size_t> touched;
  for (size_t i = 0; i < entries.size(); ++i)
    if (std::max(begin, entries[i].offset) < std::min(end, entries[i].offset + entries[i].numel)) touched.push_back(i);
  for (size_t i : touched)
    for (TensorKind kind : {TensorKind::ExpAvg, TensorKind::ExpAvgSq})
      if (!has(entries[i].spec.name, kind))
        throw Error("checkpoint " + folder_ + " has no optimizer state (" + kind_name(kind) + ") for " +
                    entries[i].spec.name);
  std::vector<LoadReport> parts(touched.size() * 2);
  parallel_for_each(touched.size() * 2, [&](size_t job) {
    const ParamEntry& e = entries[touched[job / 2]];
    const TensorKind kind = job % 2 == 0 ? TensorKind::ExpAvg : TensorKind::ExpAvgSq;
    float* base = kind == TensorKind::ExpAvg ? exp_avg : exp_avg_sq;
    const size_t b = std::max(begin, e.offset), en = std::min(end, e.offset + e.numel);
    // Same layout and the same ZeRO range: one piece is exactly what is needed.
    if (manifest_.tp == table.tp_size()) {
      for (const TensorRecord* r : pieces(e.spec.name, kind)) {
        if (r->tp_rank == table.tp_rank() && r->global_shape == e.spec.global_shape &&
            r->range_begin == static_cast<int64_t>(b - e.offset) && r->range_end == static_cast<int64_t>(en - e.offset)) {
          files_.at(r->file)->read_f32(r->key, base + (b - begin));
          return;
        }
      }
    }
    std::vector<float> local(e.numel);
    read_into_entry(table, e, kind, local.data(), parts[job]);
    std::memcpy(base + (b - begin), local.data() + (b - e.offset), (en - b) * sizeof(float));
  });
  report.bytes_read = 2 * (end - begin) * sizeof(float);
  return report;
}

void CheckpointReader::verify_all() const {
  std::vector<const TensorRecord*> all;
  for (const auto& r : manifest_.tensors) all.push_back(&r);
  parallel_for_each(all.size(), [&](size_t i) {
    const TensorRecord& r = *all[i];
    const TensorInfo& t = files_.at(r.file)->at(r.key);
    std::vector<float> buf(static_cast<size_t>(t.numel()));
    files_.at(r.file)->read_f32(r.key, buf.data());
  });
}

}  // namespace erlangshen::ckpt
