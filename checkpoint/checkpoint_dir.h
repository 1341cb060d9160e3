// Names and life cycle of checkpoint folders (DESIGN §6):
//   <dir>/.tmp-step_00001000/   being written (never read)
//   <dir>/step_00001000/        complete: renamed from the temporary name after COMPLETE was written in it
//   <dir>/latest                "step_00001000\n", replaced atomically after the rename
// A crash at any point leaves the previous complete checkpoint and `latest` untouched.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace erlangshen::ckpt {

std::string step_folder_name(int64_t step);   // "step_00001000"
std::string temp_folder_name(int64_t step);   // ".tmp-step_00001000"
std::string model_file_name(int tp_rank);     // "model-tp00.safetensors"
std::string optim_file_name(int tp_rank, int dp_rank);  // "optim-tp00-dp00.safetensors"
std::string cursor_file_name(int dp_rank);    // "data-dp00.json" (merged into the manifest, then removed)

// True when `folder` holds a complete checkpoint (COMPLETE and manifest.json).
bool is_complete(const std::string& folder);

// The newest complete checkpoint under `dir`: the folder `latest` names, or, when `latest` is missing or
// names an incomplete folder, the complete step folder with the highest step. nullopt when there is none.
std::optional<std::string> find_latest(const std::string& dir);

// A step folder from what a user passes: a step folder itself, or a checkpoint directory (its latest).
// Throws Error naming the path when neither holds a complete checkpoint.
std::string resolve_checkpoint(const std::string& path);

// Marks `temp` complete (writes COMPLETE, fsyncs), renames it to `dir`/step_NNN, then points `latest` at it.
// Returns the final folder.
std::string publish(const std::string& dir, const std::string& temp, int64_t step);

// Deletes complete step folders beyond the newest `keep` (never the one `latest` names) and temporary folders
// left by interrupted writes. keep <= 0 keeps everything.
std::vector<std::string> prune(const std::string& dir, int keep);

}  // namespace erlangshen::ckpt
