#include "model/finetune_weights.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "runtime/check.h"

namespace erlangshen {

namespace fs = std::filesystem;

namespace {

constexpr const char* kWordEmbeddings = "bert.embeddings.word_embeddings.weight";

void write_u64_le(std::ostream& out, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  out.write(reinterpret_cast<const char*>(b), 8);
}

std::string join(const std::vector<std::string>& v, size_t max_items = 8) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_items) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

void save_safetensors(const std::string& path, const ParamTable& table, const float* params,
                      const nlohmann::json& metadata) {
  ERL_CHECK(table.tp_size() == 1, "save_safetensors writes unsharded tables only (tp = " << table.tp_size() << ")");
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (auto it = metadata.begin(); it != metadata.end(); ++it)  // safetensors metadata values are strings
    meta[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
  meta["format"] = "pt";
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto& e : table.entries()) {
    const uint64_t bytes = e.numel * sizeof(float);
    header[e.spec.name] = {{"dtype", "F32"}, {"shape", e.spec.global_shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp + ": cannot write");
    write_u64_le(out, text.size());
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& e : table.entries())  // x86-64 and aarch64 are little-endian, as safetensors requires
      out.write(reinterpret_cast<const char*>(params + e.offset), static_cast<std::streamsize>(e.numel * sizeof(float)));
    out.flush();
    if (!out) throw Error(tmp + ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw Error(path + ": cannot rename " + tmp + ": " + ec.message());
}

std::string resolve_weights_file(const std::string& path) {
  if (path.empty()) throw Error("checkpoint.init: empty path");
  if (!fs::exists(path)) throw Error(path + ": no such file or directory (checkpoint.init)");
  if (!fs::is_directory(path)) return path;
  const fs::path dir(path);
  if (fs::exists(dir / "model.safetensors")) return (dir / "model.safetensors").string();
  if (fs::exists(dir / "model-tp00.safetensors")) {
    if (fs::exists(dir / "model-tp01.safetensors"))
      throw Error(path + ": a tensor-parallel checkpoint (model-tp01.safetensors exists); merge it first with "
                         "`erlangshen export`");
    return (dir / "model-tp00.safetensors").string();
  }
  if (fs::exists(dir / "latest")) {
    std::ifstream in(dir / "latest");
    std::string name;
    in >> name;
    if (name.empty()) throw Error((dir / "latest").string() + ": empty");
    return resolve_weights_file((dir / name).string());
  }
  throw Error(path + ": no model.safetensors, model-tp00.safetensors or latest in this folder");
}

WeightLoadReport load_weights_by_name(const std::string& path, const ParamTable& table, float* params,
                                      const std::vector<std::string>& required) {
  ERL_CHECK(table.tp_size() == 1, "load_weights_by_name fills unsharded tables only (tp = " << table.tp_size() << ")");
  WeightLoadReport r;
  r.file = resolve_weights_file(path);
  std::ifstream in(r.file, std::ios::binary);
  if (!in) throw Error(r.file + ": cannot open");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len_bytes[i]) << (8 * i);
  const uint64_t file_size = fs::file_size(r.file);
  if (!in || header_len == 0 || header_len > file_size - 8)
    throw Error(r.file + ": not a safetensors file (bad header length)");
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(r.file + ": invalid safetensors header: " + e.what());
  }
  const uint64_t data_start = 8 + header_len;

  std::vector<char> buf;
  for (const auto& e : table.entries()) {
    const std::string& name = e.spec.name;
    auto it = header.find(name);
    if (it == header.end()) {
      r.missing.push_back(name);
      continue;
    }
    const std::string dtype = it->at("dtype").get<std::string>();
    const std::vector<int64_t> shape = it->at("shape").get<std::vector<int64_t>>();
    const uint64_t begin = it->at("data_offsets")[0].get<uint64_t>(), end = it->at("data_offsets")[1].get<uint64_t>();
    const size_t elem = dtype == "F32" ? 4 : dtype == "F64" ? 8 : dtype == "BF16" ? 2 : 0;
    if (elem == 0) throw Error(r.file + ": tensor '" + name + "' has dtype " + dtype + " (F32, F64 or BF16 expected)");
    const auto& want = e.spec.global_shape;
    const bool rows_only = name == kWordEmbeddings && shape.size() == 2 && want.size() == 2 && shape[1] == want[1];
    if (shape != want && !rows_only) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string o = "[";
        for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
        return o + "]";
      };
      throw Error(r.file + ": tensor '" + name + "' has shape " + str(shape) + " but the model expects " + str(want) +
                  " (does the config's model section match the checkpoint?)");
    }
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (end - begin != static_cast<uint64_t>(numel) * elem || data_start + end > file_size)
      throw Error(r.file + ": tensor '" + name + "' has inconsistent data offsets (truncated file?)");
    // Rows to copy: all of them, or the rows both shapes have (the rest of ours keep their init).
    const int64_t cols = want.size() == 2 ? want[1] : 1;
    const int64_t rows = want.size() == 2 ? std::min(want[0], shape[0]) : numel;
    const int64_t count = want.size() == 2 ? rows * cols : numel;
    buf.resize(static_cast<size_t>(count) * elem);
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (!in) throw Error(r.file + ": read failed in tensor '" + name + "'");
    float* dst = params + e.offset;
    for (int64_t i = 0; i < count; ++i) {
      const char* src = buf.data() + i * elem;
      if (elem == 4) std::memcpy(dst + i, src, 4);
      else if (elem == 8) {
        double d;
        std::memcpy(&d, src, 8);
        dst[i] = static_cast<float>(d);
      } else {
        uint16_t h;
        std::memcpy(&h, src, 2);
        dst[i] = bf16_to_float(h);
      }
    }
    if (shape != want) r.resized.push_back(name);
    r.loaded.push_back(name);
  }
  for (auto it = header.begin(); it != header.end(); ++it)
    if (it.key() != "__metadata__" && !table.contains(it.key())) r.unused.push_back(it.key());
  std::vector<std::string> absent;
  for (const auto& name : r.missing)
    for (const auto& prefix : required)
      if (name.compare(0, prefix.size(), prefix) == 0) absent.push_back(name);
  if (!absent.empty())
    throw Error(r.file + ": missing " + std::to_string(absent.size()) + " required tensors: " + join(absent));
  return r;
}

}  // namespace erlangshen
