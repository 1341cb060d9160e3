#include "checkpoint/checkpoint_dir.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "checkpoint/file_io.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace fs = std::filesystem;

namespace {

// Step of a folder named step_NNN, or -1.
int64_t parse_step(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() <= 5) return -1;
  int64_t s = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    s = s * 10 + (name[i] - '0');
  }
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string step_folder_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string temp_folder_name(int64_t step) { return ".tmp-" + step_folder_name(step); }

std::string model_file_name(int tp_rank) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-tp%02d.safetensors", tp_rank);
  return buf;
}

std::string optim_file_name(int tp_rank, int dp_rank) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "optim-tp%02d-dp%02d.safetensors", tp_rank, dp_rank);
  return buf;
}

std::string cursor_file_name(int dp_rank) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "data-dp%02d.json", dp_rank);
  return buf;
}

bool is_complete(const std::string& folder) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(folder) / "COMPLETE", ec) && fs::is_regular_file(fs::path(folder) / "manifest.json", ec);
}

std::optional<std::string> find_latest(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  const fs::path latest = fs::path(dir) / "latest";
  if (fs::is_regular_file(latest, ec)) {
    const std::string name = trim(read_text_file(latest.string()));
    const fs::path folder = fs::path(dir) / name;
    if (!name.empty() && is_complete(folder.string())) return folder.string();
  }
  int64_t best = -1;
  std::string found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const int64_t s = parse_step(e.path().filename().string());
    if (s > best && is_complete(e.path().string())) best = s, found = e.path().string();
  }
  if (best < 0) return std::nullopt;
  return found;
}

std::string resolve_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("checkpoint " + path + ": no such file or directory");
  if (fs::is_regular_file(fs::path(path) / "manifest.json", ec)) {
    if (!is_complete(path))
      throw Error("checkpoint " + path + " is incomplete (no COMPLETE file: its write was interrupted)");
    return path;
  }
  if (auto latest = find_latest(path)) return *latest;
  throw Error("checkpoint " + path + ": holds no complete checkpoint (no manifest.json, no `latest`, no step_* folder with COMPLETE)");
}

std::string publish(const std::string& dir, const std::string& temp, int64_t step) {
  {
    OutputFile f((fs::path(temp) / "COMPLETE").string());
    const std::string text = std::to_string(step) + "\n";
    f.write(text.data(), text.size());
    f.sync();
    f.close();
  }
  sync_directory(temp);
  const fs::path final_folder = fs::path(dir) / step_folder_name(step);
  std::error_code ec;
  if (fs::exists(final_folder, ec)) {
    // Only reachable when an earlier run wrote the same step and a later one re-trained it; the old copy is
    // complete and, with exact resume, identical. Keep it (never delete saved work) and drop ours.
    fs::remove_all(temp, ec);
  } else {
    fs::rename(temp, final_folder, ec);
    if (ec) throw Error("cannot rename " + temp + " to " + final_folder.string() + ": " + ec.message());
    sync_directory(dir);
  }
  write_file_atomic((fs::path(dir) / "latest").string(), step_folder_name(step) + "\n");
  return final_folder.string();
}

std::vector<std::string> prune(const std::string& dir, int keep) {
  std::vector<std::string> removed;
  std::error_code ec;
  std::vector<std::pair<int64_t, fs::path>> complete;
  std::string latest_name;
  if (auto latest = find_latest(dir)) latest_name = fs::path(*latest).filename().string();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".tmp-step_", 0) == 0) {
      fs::remove_all(e.path(), ec);
      removed.push_back(e.path().string());
      continue;
    }
    const int64_t s = parse_step(name);
    if (s >= 0 && is_complete(e.path().string())) complete.emplace_back(s, e.path());
  }
  if (keep <= 0) return removed;
  std::sort(complete.begin(), complete.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = static_cast<size_t>(keep); i < complete.size(); ++i) {
    if (complete[i].second.filename().string() == latest_name) continue;
    // Remove COMPLETE first: a half-deleted folder must never look complete.
    fs::remove(complete[i].second / "COMPLETE", ec);
    fs::remove_all(complete[i].second, ec);
    removed.push_back(complete[i].second.string());
  }
  return removed;
}

}  // namespace erlangshen::ckpt
