// manifest.json of a checkpoint (DESIGN §6): what was trained (model config, vocab hash), how it was laid out
// (tp, dp, ZeRO-1), where training stood (step, consumed samples, LR schedule, RNG seed, every DP rank's data
// cursor) and an index of every stored tensor piece: HF name, kind, global shape, TP split axis, which TP/DP rank
// it belongs to, file, and checksum. The index alone is enough to re-shard into any other layout.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/config.h"

namespace erlangshen::ckpt {

constexpr int kManifestVersion = 1;
constexpr const char* kManifestFormat = "erlangshen-checkpoint";

// What one stored piece is.
enum class TensorKind { Param, ExpAvg, ExpAvgSq };
const char* kind_name(TensorKind k);
TensorKind kind_from_name(const std::string& s);  // throws on unknown

struct TensorRecord {
  std::string name;                   // HF name of the parameter
  TensorKind kind = TensorKind::Param;
  std::string file;                   // file within the step folder
  std::string key;                    // tensor name inside that file
  std::vector<int64_t> global_shape;  // unsharded shape under the saved layout (vocab rows padded for its tp)
  int split_axis = -1;                // -1 replicated, 0 rows, 1 columns
  int tp_rank = 0;
  int dp_rank = 0;                    // ZeRO-1 shard owner (0 for parameters and unsharded optimizer state)
  std::vector<int64_t> local_shape;   // this TP rank's shard
  int64_t local_offset = 0;           // where the shard starts along split_axis
  int64_t range_begin = 0;            // elements [range_begin, range_end) of the local shard held by this piece
  int64_t range_end = 0;
  std::string crc32c;
};

struct FileRecord {
  std::string name;
  uint64_t bytes = 0;
};

struct Manifest {
  int version = kManifestVersion;
  int64_t step = 0;
  int64_t consumed_samples = 0;
  ModelConfig model;
  std::string heads = "pretraining";  // "pretraining" | "classification"
  std::string vocab_sha256;           // empty when the run had no vocabulary file
  std::string vocab_file;             // "vocab.txt" when a copy is stored in the folder
  int tp = 1, dp = 1;
  bool zero1 = false;
  nlohmann::json schedule = nlohmann::json::object();   // step, lr at step, and the schedule's parameters
  nlohmann::json rng = nlohmann::json::object();        // seed (all draws are keyed by seed and step)
  nlohmann::json optimizer = nlohmann::json::object();  // type, step_count, betas, eps, weight decay
  std::vector<nlohmann::json> data_cursors;             // one per DP rank (empty: none saved)
  std::string config_text;                              // dump_config() of the run, for the record
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;

  nlohmann::ordered_json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::string& where);
  // Loads `dir`/manifest.json; errors name the file.
  static Manifest load(const std::string& dir);
  bool has_optimizer() const;
};

nlohmann::json model_config_to_json(const ModelConfig& m);
ModelConfig model_config_from_json(const nlohmann::json& j);

// Differences between the architecture of a checkpoint and a config, one "key: checkpoint X, config Y" per
// line (empty when compatible). Vocab padding is not a difference: it follows tp.
std::string model_mismatch(const ModelConfig& saved, const ModelConfig& config);

}  // namespace erlangshen::ckpt
