// Re-sharding tests without MPI: a checkpoint is written as the ranks of one layout would write it (each
// virtual rank's table, parameters and ZeRO-1 range), then read back as the ranks of another layout.
// Initialisation is keyed by global index (DESIGN §2), so every layout's shards are slices of one global
// tensor; the optimizer moments are set to a function of the global index too. Every element must land where
// the new layout expects it; vocab padding rows the checkpoint lacks must be inert.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/reader.h"
#include "checkpoint/shard_writer.h"
#include "ckpt_test_util.h"
#include "model/param_layout.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace {

using ckpt_testing::ScratchDir;
namespace fs = std::filesystem;

constexpr uint64_t kSeed = 7;

ModelConfig small_config() {
  ModelConfig m;
  m.hidden = 32;
  m.layers = 2;
  m.heads = 4;
  m.ffn = 64;
  m.vocab_size = 1100;  // padded rows: 1152 (tp 1), 1280 (tp 2), 1536 (tp 4)
  m.max_positions = 64;
  return m;
}

// Moment values as a function of the global element (same for every layout).
float moment(TensorKind kind, const ParamEntry& e, int64_t global_index) {
  const uint64_t h = static_cast<uint64_t>(global_index) * 2654435761u + e.site + (kind == TensorKind::ExpAvg ? 0 : 77);
  return static_cast<float>(h % 100003) * 1e-5f + (kind == TensorKind::ExpAvgSq ? 1.0f : 0.0f);
}

std::vector<float> moments_of(const ParamTable& t, TensorKind kind) {
  std::vector<float> out(t.total());
  for (const auto& e : t.entries())
    for (size_t i = 0; i < e.numel; ++i) out[e.offset + i] = moment(kind, e, e.global_index(static_cast<int64_t>(i)));
  return out;
}

// [begin, end) of DP rank d of n over `total` elements (uneven on purpose).
std::pair<size_t, size_t> zero_range(size_t total, int d, int n) {
  return {total * d / n, total * (d + 1) / n};
}

void write_layout(const std::string& dir, const ModelConfig& cfg, int tp, int dp, bool zero1, int64_t step) {
  const std::string temp = (fs::path(dir) / temp_folder_name(step)).string();
  fs::create_directories(temp);
  for (int r = 0; r < tp; ++r) {
    const ParamTable table = build_param_table(cfg, ModelHeads::Pretraining, r, tp);
    std::vector<float> params(table.total());
    initialize_parameters(table, params.data(), kSeed);
    write_model_shard(temp, table, params.data());
    const auto m = moments_of(table, TensorKind::ExpAvg), v = moments_of(table, TensorKind::ExpAvgSq);
    for (int d = 0; d < (zero1 ? dp : 1); ++d) {
      const auto [b, e] = zero1 ? zero_range(table.total(), d, dp) : std::pair<size_t, size_t>{0, table.total()};
      write_optimizer_shard(temp, table, d, b, e, m.data() + b, v.data() + b, step);
    }
  }
  for (int d = 0; d < dp; ++d) write_data_cursor(temp, d, {{"step", step}, {"rank", d}});
  Manifest man;
  man.step = step;
  man.model = cfg;
  man.tp = tp;
  man.dp = dp;
  man.zero1 = zero1;
  assemble_manifest(temp, man, true);
  publish(dir, temp, step);
}

// Row of a local element along the vocab axis (for padding checks).
int64_t vocab_row(const ParamEntry& e, int64_t global_index) {
  return e.spec.global_shape.size() == 2 ? global_index / e.spec.global_shape[1] : global_index;
}

bool is_vocab(const ParamEntry& e) {
  return e.spec.name == "bert.embeddings.word_embeddings.weight" || e.spec.name == "cls.predictions.bias";
}

// Loads the checkpoint as every rank of (tp, dp, zero1) and checks every element.
void check_layout(const std::string& dir, const ModelConfig& cfg, int tp, int dp, bool zero1, int64_t saved_rows) {
  CheckpointReader reader(dir);
  int64_t added = 0;
  for (int r = 0; r < tp; ++r) {
    const ParamTable table = build_param_table(cfg, ModelHeads::Pretraining, r, tp);
    std::vector<float> expect(table.total());
    initialize_parameters(table, expect.data(), kSeed);
    std::vector<float> params(table.total(), std::nanf(""));
    const LoadReport rep = reader.load_params(table, params.data());
    added += rep.padding_rows_added;
    const auto m_all = moments_of(table, TensorKind::ExpAvg), v_all = moments_of(table, TensorKind::ExpAvgSq);
    for (const auto& e : table.entries()) {
      for (size_t i = 0; i < e.numel; ++i) {
        const int64_t g = e.global_index(static_cast<int64_t>(i));
        const bool pad = is_vocab(e) && vocab_row(e, g) >= saved_rows;
        const float want = !pad ? expect[e.offset + i] : (e.spec.name == "cls.predictions.bias" ? kPaddedLogitBias : 0.0f);
        ASSERT_EQ(params[e.offset + i], want) << e.spec.name << " element " << i << " tp " << r << "/" << tp;
      }
    }
    for (int d = 0; d < (zero1 ? dp : 1); ++d) {
      const auto [b, en] = zero1 ? zero_range(table.total(), d, dp) : std::pair<size_t, size_t>{0, table.total()};
      std::vector<float> m(en - b, std::nanf("")), v(en - b, std::nanf(""));
      reader.load_optimizer(table, b, en, m.data(), v.data());
      for (const auto& e : table.entries()) {
        for (size_t i = 0; i < e.numel; ++i) {
          const size_t flat = e.offset + i;
          if (flat < b || flat >= en) continue;
          const int64_t g = e.global_index(static_cast<int64_t>(i));
          const bool pad = is_vocab(e) && vocab_row(e, g) >= saved_rows;
          ASSERT_EQ(m[flat - b], pad ? 0.0f : m_all[flat]) << e.spec.name << " exp_avg " << i;
          ASSERT_EQ(v[flat - b], pad ? 0.0f : v_all[flat]) << e.spec.name << " exp_avg_sq " << i;
        }
      }
    }
  }
  const int64_t new_rows = cfg.padded_vocab(tp);
  EXPECT_EQ(added, std::max<int64_t>(0, new_rows - saved_rows));
}

TEST(Relayout, Tp2Dp2Zero1ToOtherLayouts) {
  ScratchDir dir("relayout_tp2dp2");
  const ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 2, 2, true, 3);
  const int64_t saved_rows = cfg.padded_vocab(2);
  const CheckpointReader saved(dir.path().string());
  const Manifest& m = saved.manifest();
  EXPECT_EQ(m.tp, 2);
  EXPECT_EQ(m.dp, 2);
  EXPECT_TRUE(m.zero1);
  ASSERT_EQ(m.data_cursors.size(), 2u);
  EXPECT_EQ(m.data_cursors[1].at("rank"), 1);
  check_layout(dir.path().string(), cfg, 2, 2, true, saved_rows);   // same layout (fast path)
  check_layout(dir.path().string(), cfg, 1, 4, true, saved_rows);   // TP1 x DP4 ZeRO-1: padding rows dropped
  check_layout(dir.path().string(), cfg, 4, 1, false, saved_rows);  // TP4 x DP1: padding rows added, inert
  check_layout(dir.path().string(), cfg, 2, 3, true, saved_rows);   // other ZeRO ranges
  check_layout(dir.path().string(), cfg, 1, 1, false, saved_rows);
}

TEST(Relayout, Tp1ToTp2AddsInertPadding) {
  ScratchDir dir("relayout_tp1");
  const ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 1, 1, false, 9);
  check_layout(dir.path().string(), cfg, 2, 2, true, cfg.padded_vocab(1));
  check_layout(dir.path().string(), cfg, 4, 1, false, cfg.padded_vocab(1));
}

TEST(Relayout, CorruptShardIsNamed) {
  ScratchDir dir("relayout_corrupt");
  const ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 2, 1, false, 3);
  const fs::path file = dir.path() / step_folder_name(3) / model_file_name(1);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) - 1000));
    f.put('\x7f');
  }
  CheckpointReader reader(dir.path().string());
  const ParamTable table = build_param_table(cfg, ModelHeads::Pretraining, 1, 2);
  std::vector<float> params(table.total());
  try {
    reader.load_params(table, params.data());
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-tp01.safetensors"), std::string::npos) << e.what();
  }
  // Rank 0's shard is intact and still loads; re-sharding to TP1 needs rank 1's shard and fails naming it.
  const ParamTable t0 = build_param_table(cfg, ModelHeads::Pretraining, 0, 2);
  std::vector<float> p0(t0.total());
  EXPECT_NO_THROW(reader.load_params(t0, p0.data()));
  EXPECT_THROW(reader.verify_all(), Error);
}

TEST(Relayout, MissingShardFileIsNamed) {
  ScratchDir dir("relayout_missing");
  const ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 1, 2, true, 3);
  fs::remove(dir.path() / step_folder_name(3) / optim_file_name(0, 1));
  try {
    CheckpointReader reader(dir.path().string());
    FAIL() << "missing file not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("optim-tp00-dp01.safetensors"), std::string::npos) << e.what();
  }
}

TEST(Relayout, ShapeMismatchIsRefused) {
  ScratchDir dir("relayout_shape");
  ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 1, 1, false, 3);
  cfg.ffn = 128;
  const ParamTable table = build_param_table(cfg, ModelHeads::Pretraining, 0, 1);
  std::vector<float> params(table.total());
  try {
    CheckpointReader(dir.path().string()).load_params(table, params.data());
    FAIL() << "shape mismatch not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate.dense"), std::string::npos) << e.what();
  }
}

TEST(Relayout, ClassificationHeadsLoadFromPretrainingCheckpoint) {
  ScratchDir dir("relayout_heads");
  const ModelConfig cfg = small_config();
  write_layout(dir.path().string(), cfg, 1, 1, false, 3);
  const ParamTable table = build_param_table(cfg, ModelHeads::Classification, 0, 1);
  std::vector<float> params(table.total(), 5.0f);
  CheckpointReader reader(dir.path().string());
  EXPECT_THROW(reader.load_params(table, params.data()), Error);
  const LoadReport rep = reader.load_params(table, params.data(), true);
  EXPECT_EQ(rep.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_FALSE(rep.unused.empty());  // cls.* heads
  EXPECT_EQ(params[table.at("classifier.bias").offset], 5.0f);  // untouched
}

}  // namespace
}  // namespace erlangshen::ckpt
