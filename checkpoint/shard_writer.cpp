#include "checkpoint/shard_writer.h"

#include <algorithm>
#include <filesystem>

#include "checkpoint/checkpoint_dir.h"
#include "checkpoint/crc32c.h"
#include "checkpoint/file_io.h"
#include "checkpoint/safetensors.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace fs = std::filesystem;

namespace {

nlohmann::json record_json(const TensorRecord& r) {
  return {{"name", r.name},
          {"kind", kind_name(r.kind)},
          {"key", r.key},
          {"global_shape", r.global_shape},
          {"split_axis", r.split_axis},
          {"tp_rank", r.tp_rank},
          {"dp_rank", r.dp_rank},
          {"local_shape", r.local_shape},
          {"local_offset", r.local_offset},
          {"range", {r.range_begin, r.range_end}}};
}

TensorRecord record_from_json(const nlohmann::json& j) {
  TensorRecord r;
  r.name = j.at("name").get<std::string>();
  r.kind = kind_from_name(j.at("kind").get<std::string>());
  r.key = j.at("key").get<std::string>();
  r.global_shape = j.at("global_shape").get<std::vector<int64_t>>();
  r.split_axis = j.at("split_axis").get<int>();
  r.tp_rank = j.at("tp_rank").get<int>();
  r.dp_rank = j.at("dp_rank").get<int>();
  r.local_shape = j.at("local_shape").get<std::vector<int64_t>>();
  r.local_offset = j.at("local_offset").get<int64_t>();
  const auto range = j.at("range").get<std::vector<int64_t>>();
  r.range_begin = range.at(0);
  r.range_end = range.at(1);
  return r;
}

TensorRecord base_record(const ParamEntry& e, int tp_rank) {
  TensorRecord r;
  r.name = e.spec.name;
  r.global_shape = e.spec.global_shape;
  r.split_axis = e.spec.split_axis;
  r.tp_rank = tp_rank;
  r.local_shape = e.local_shape;
  r.local_offset = e.local_offset;
  return r;
}

}  // namespace

FileRecord write_model_shard(const std::string& folder, const ParamTable& table, const float* params,
                             const std::function<void()>& mid_write) {
  const std::string name = model_file_name(table.tp_rank());
  SafetensorsWriter w;
  nlohmann::json index = nlohmann::json::array();
  for (const auto& e : table.entries()) {
    w.add(e.spec.name, e.local_shape, params + e.offset);
    TensorRecord r = base_record(e, table.tp_rank());
    r.kind = TensorKind::Param;
    r.key = e.spec.name;
    r.range_begin = 0;
    r.range_end = static_cast<int64_t>(e.numel);
    index.push_back(record_json(r));
  }
  w.set_metadata("format", "pt");
  w.set_metadata("erlangshen.index", index.dump());
  const auto written = w.write((fs::path(folder) / name).string(), mid_write);
  return {name, written.bytes};
}

FileRecord write_optimizer_shard(const std::string& folder, const ParamTable& table, int dp_rank, size_t begin,
                                 size_t end, const float* exp_avg, const float* exp_avg_sq, int64_t step_count) {
  const std::string name = optim_file_name(table.tp_rank(), dp_rank);
  SafetensorsWriter w;
  nlohmann::json index = nlohmann::json::array();
  // exp_avg pieces first, then exp_avg_sq: each moment is then one contiguous run in memory and in the file.
  for (TensorKind kind : {TensorKind::ExpAvg, TensorKind::ExpAvgSq}) {
    const float* base = kind == TensorKind::ExpAvg ? exp_avg : exp_avg_sq;
    for (const auto& e : table.entries()) {
      const size_t b = std::max(begin, e.offset), en = std::min(end, e.offset + e.numel);
      if (b >= en) continue;
      TensorRecord r = base_record(e, table.tp_rank());
      r.kind = kind;
      r.dp_rank = dp_rank;
      r.key = std::string(kind_name(kind)) + "/" + e.spec.name;
      r.range_begin = static_cast<int64_t>(b - e.offset);
      r.range_end = static_cast<int64_t>(en - e.offset);
      w.add(r.key, {static_cast<int64_t>(en - b)}, base + (b - begin));
      index.push_back(record_json(r));
    }
  }
  w.set_metadata("erlangshen.index", index.dump());
  w.set_metadata("erlangshen.step_count", std::to_string(step_count));
  const auto written = w.write((fs::path(folder) / name).string());
  return {name, written.bytes};
}

void write_data_cursor(const std::string& folder, int dp_rank, const nlohmann::json& cursor) {
  OutputFile f((fs::path(folder) / cursor_file_name(dp_rank)).string());
  const std::string text = cursor.dump();
  f.write(text.data(), text.size());
  f.sync();
  f.close();
}

void assemble_manifest(const std::string& folder, Manifest& m, bool expect_cursors) {
  m.files.clear();
  m.tensors.clear();
  m.data_cursors.clear();
  std::vector<std::string> names;
  for (int t = 0; t < m.tp; ++t) {
    const std::string name = model_file_name(t);
    if (!fs::exists(fs::path(folder) / name))
      throw Error("checkpoint " + folder + ": " + name + " was not written (TP rank " + std::to_string(t) + ")");
    names.push_back(name);
  }
  std::vector<std::string> optim;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("optim-", 0) == 0 && e.path().extension() == ".safetensors") optim.push_back(n);
  }
  std::sort(optim.begin(), optim.end());
  names.insert(names.end(), optim.begin(), optim.end());
  for (const auto& name : names) {
    const std::string path = (fs::path(folder) / name).string();
    SafetensorsReader reader(path);
    m.files.push_back({name, reader.file_size()});
    auto it = reader.metadata().find("erlangshen.index");
    if (it == reader.metadata().end()) throw Error(path + ": no erlangshen.index metadata");
    for (const auto& j : nlohmann::json::parse(it->second)) {
      TensorRecord r = record_from_json(j);
      r.file = name;
      uint32_t crc = 0;
      if (!reader.stored_crc(r.key, &crc)) throw Error(path + ": no checksum for " + r.key);
      r.crc32c = crc32c_hex(crc);
      m.tensors.push_back(std::move(r));
    }
    if (name.rfind("optim-", 0) == 0) {
      auto sc = reader.metadata().find("erlangshen.step_count");
      if (sc != reader.metadata().end()) m.optimizer["step_count"] = std::stoll(sc->second);
    }
  }
  if (expect_cursors) {
    for (int d = 0; d < m.dp; ++d) {
      const fs::path p = fs::path(folder) / cursor_file_name(d);
      if (!fs::exists(p))
        throw Error("checkpoint " + folder + ": the data cursor of DP rank " + std::to_string(d) + " was not written");
      m.data_cursors.push_back(nlohmann::json::parse(read_text_file(p.string())));
    }
  }
  write_file_atomic((fs::path(folder) / "manifest.json").string(), m.to_json().dump(1) + "\n");
  for (int d = 0; d < m.dp && expect_cursors; ++d) fs::remove(fs::path(folder) / cursor_file_name(d));
}

}  // namespace erlangshen::ckpt
