// Reading a checkpoint into any layout. The tensor index of the manifest says how each tensor was split
// (TP split axis, which TP rank, which ZeRO-1 element range); the reader reassembles what a rank of the new
// layout needs: its TP shard of every parameter and its ZeRO-1 range of the optimizer moments.
//
// Same layout: each tensor is read straight into place (one pread per tensor, checksum on the fly).
// Other layout: the saved global tensor is rebuilt from its shards, then the new shard is cut out.
// Vocab padding (word embedding rows and the MLM bias follow tp: padded_vocab(tp)) may differ between layouts:
// rows missing from the checkpoint are filled inert (embedding rows 0, MLM bias kPaddedLogitBias, moments 0),
// so their logits take no probability mass and their gradients stay exactly 0; surplus saved padding rows are
// dropped (with a warning from the caller).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/manifest.h"
#include "checkpoint/safetensors.h"
#include "runtime/param_table.h"

namespace erlangshen::ckpt {

// Bias of MLM logits for vocab padding rows that a checkpoint did not have: exp(-1e4 - max) is exactly 0 in
// fp32 and bf16, so such rows never change a loss or receive a gradient.
constexpr float kPaddedLogitBias = -1.0e4f;

struct LoadReport {
  std::vector<std::string> missing;        // tensors of the table that the checkpoint lacks (left as they were)
  std::vector<std::string> unused;         // checkpoint tensors the table has no place for
  int64_t padding_rows_added = 0;          // vocab rows filled inert
  int64_t padding_rows_dropped = 0;        // saved vocab padding rows beyond the new padded size
  bool same_layout = false;                // fast path for every tensor
  uint64_t bytes_read = 0;
};

class CheckpointReader {
 public:
  // `path`: a checkpoint directory (its latest) or a step folder. Reads the manifest, opens every file it
  // lists and checks file sizes (a truncated file is named).
  explicit CheckpointReader(const std::string& path);

  const Manifest& manifest() const { return manifest_; }
  const std::string& folder() const { return folder_; }

  // Fills params (table.total() floats) with this TP rank's shards. allow_missing: tensors absent from the
  // checkpoint keep their values (fine-tuning heads); otherwise they are an error.
  LoadReport load_params(const ParamTable& table, float* params, bool allow_missing = false) const;
  // Fills the AdamW moments of flat elements [begin, end) of `table`'s buffer (end - begin floats each).
  LoadReport load_optimizer(const ParamTable& table, size_t begin, size_t end, float* exp_avg, float* exp_avg_sq) const;

  // The saved global (unsharded) tensor, e.g. for export. Shape: the record's global_shape.
  std::vector<float> read_global(const std::string& name, TensorKind kind = TensorKind::Param) const;
  std::vector<int64_t> global_shape(const std::string& name) const;
  bool has(const std::string& name, TensorKind kind = TensorKind::Param) const;
  // Every stored tensor read and checksummed; throws naming the first bad file.
  void verify_all() const;

 private:
  const std::vector<const TensorRecord*>& pieces(const std::string& name, TensorKind kind) const;
  // The saved local shard of TP rank `tp_rank` (assembled from its pieces).
  std::vector<float> read_local(const std::string& name, TensorKind kind, int tp_rank) const;
  // The shard `e` of the new layout (any TP), with padding rows filled per kind. Adds to report counters.
  void read_into_entry(const ParamTable& table, const ParamEntry& e, TensorKind kind, float* dst,
                       LoadReport& report) const;

  std::string folder_;
  Manifest manifest_;
  std::map<std::string, std::unique_ptr<SafetensorsReader>> files_;
  std::map<std::pair<int, std::string>, std::vector<const TensorRecord*>> index_;  // (kind, name) -> pieces
};

}  // namespace erlangshen::ckpt
