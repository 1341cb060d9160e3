// What each rank writes into the temporary folder of a checkpoint, and how rank 0 assembles the manifest from
// it. Every safetensors file carries its part of the tensor index in its metadata ("index"), so rank 0 needs no
// collective beyond a barrier: it reads the headers of the files the other ranks wrote.
//
//   model-tpXX.safetensors        the TP rank's parameter shards (written by DP rank 0), in flat-buffer order
//   optim-tpXX-dpYY.safetensors   AdamW exp_avg / exp_avg_sq of elements [begin, end) of the flat buffer
//                                 ("exp_avg/NAME", "exp_avg_sq/NAME"; one piece per tensor the range touches)
//   data-dpYY.json                the DP rank's data cursor (merged into the manifest, then removed)
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint/manifest.h"
#include "runtime/param_table.h"

namespace erlangshen::ckpt {

// Writes model-tpXX.safetensors for `table`'s TP rank. `mid_write` is the crash-test hook (may be empty).
FileRecord write_model_shard(const std::string& folder, const ParamTable& table, const float* params,
                             const std::function<void()>& mid_write = {});

// Writes optim-tpXX-dpYY.safetensors: AdamW moments of flat elements [begin, end) (exp_avg, exp_avg_sq hold
// end - begin values each).
FileRecord write_optimizer_shard(const std::string& folder, const ParamTable& table, int dp_rank, size_t begin,
                                 size_t end, const float* exp_avg, const float* exp_avg_sq, int64_t step_count);

void write_data_cursor(const std::string& folder, int dp_rank, const nlohmann::json& cursor);

// Rank 0, after every rank wrote its files: fills `m.files`, `m.tensors` and `m.data_cursors` from the folder
// (checking that every TP rank's model file and every DP rank's cursor is there), writes manifest.json.
void assemble_manifest(const std::string& folder, Manifest& m, bool expect_cursors);

}  // namespace erlangshen::ckpt
