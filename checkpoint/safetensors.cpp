#include "checkpoint/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "checkpoint/crc32c.h"
#include "checkpoint/stream_write.h"
#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace {

constexpr uint64_t kMaxHeader = uint64_t(256) << 20;

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) mant <<= 1, --exp;
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t dtype_size(const std::string& d) {
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  throw Error("unknown safetensors dtype '" + d + "'");
}

void SafetensorsWriter::add(std::string name, std::vector<int64_t> shape, const float* data) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  items_.push_back({std::move(name), std::move(shape), data, static_cast<size_t>(n) * sizeof(float)});
}

std::string SafetensorsWriter::header(const std::vector<uint32_t>& crcs) const {
  nlohmann::ordered_json header;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  for (size_t i = 0; i < items_.size(); ++i) meta[crc_key(items_[i].name)] = crc32c_hex(crcs[i]);
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto& it : items_) {
    header[it.name] = {{"dtype", "F32"}, {"shape", it.shape}, {"data_offsets", {offset, offset + it.bytes}}};
    offset += it.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + text;
}

SafetensorsWriter::Written SafetensorsWriter::write(const std::string& path, const std::function<void()>& mid_write) const {
  // The header carries the checksums, but its length does not depend on their values (8 hex digits each): it
  // is laid out with zeros to place the data, the data is checksummed while it is written, and the real header
  // is written over the start of the file last.
  const uint64_t data_start = header(std::vector<uint32_t>(items_.size(), 0)).size();
  std::vector<FilePiece> pieces;
  uint64_t total = 0;
  for (const auto& it : items_) pieces.push_back({it.data, it.bytes}), total += it.bytes;

  OutputFile f(path);
  const std::vector<uint32_t> crcs = write_pieces(f, data_start, pieces, mid_write);
  const std::string head = header(crcs);
  ERL_CHECK(head.size() == data_start, "safetensors header changed length when its checksums were filled in");
  f.write_at(0, head.data(), head.size());
  f.sync();
  f.close();

  Written out;
  out.bytes = data_start + total;
  for (size_t i = 0; i < items_.size(); ++i) out.crc[items_[i].name] = crcs[i];
  return out;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : file_(std::make_unique<InputFile>(path)) {
  if (file_->size() < 8) throw Error(path + ": not a safetensors file (shorter than 8 bytes)");
  unsigned char len[8];
  file_->read_at(0, len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  if (n > kMaxHeader || 8 + n > file_->size())
    throw Error(path + ": corrupt safetensors header (header length " + std::to_string(n) + ", file size " +
                std::to_string(file_->size()) + ")");
  std::string text(n, '\0');
  file_->read_at(8, text.data(), n);
  data_start_ = 8 + n;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(path + ": corrupt safetensors header (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(path + ": corrupt safetensors header (not a JSON object)");
  const uint64_t data_size = file_->size() - data_start_;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        for (auto m = it->begin(); m != it->end(); ++m) metadata_[m.key()] = m->get<std::string>();
        continue;
      }
      TensorInfo t;
      t.name = it.key();
      t.dtype = it->at("dtype").get<std::string>();
      t.shape = it->at("shape").get<std::vector<int64_t>>();
      const auto offs = it->at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2) throw Error("data_offsets of " + t.name + " must have 2 entries");
      t.begin = offs[0];
      t.end = offs[1];
      if (t.begin > t.end || t.end > data_size)
        throw Error("tensor " + t.name + " lies outside the file (truncated?)");
      if (static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) != t.end - t.begin)
        throw Error("tensor " + t.name + ": shape and byte size disagree");
      tensors_.push_back(std::move(t));
    }
  } catch (const Error& e) {
    throw Error(path + ": corrupt safetensors header: " + e.what());
  } catch (const std::exception& e) {
    throw Error(path + ": corrupt safetensors header (" + e.what() + ")");
  }
  // Keep file order (by offset), as written.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo* SafetensorsReader::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsReader::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(path() + ": has no tensor '" + name + "'");
  return *t;
}

bool SafetensorsReader::stored_crc(const std::string& name, uint32_t* crc) const {
  auto it = metadata_.find(crc_key(name));
  if (it == metadata_.end()) return false;
  *crc = static_cast<uint32_t>(std::stoul(it->second, nullptr, 16));
  return true;
}

void SafetensorsReader::read_f32(const std::string& name, float* dst, bool verify) const {
  const TensorInfo& t = at(name);
  const size_t bytes = t.end - t.begin;
  const int64_t n = t.numel();
  uint32_t expected = 0;
  const bool check = verify && stored_crc(name, &expected);
  if (t.dtype == "F32") {
    file_->read_at(data_start_ + t.begin, dst, bytes);
    if (check) {
      const uint32_t got = crc32c(dst, bytes);
      if (got != expected)
        throw Error(path() + ": checksum mismatch in tensor '" + name + "' (stored crc32c " + crc32c_hex(expected) +
                    ", computed " + crc32c_hex(got) + "): the file is corrupt");
    }
    return;
  }
  std::vector<unsigned char> raw(bytes);
  file_->read_at(data_start_ + t.begin, raw.data(), bytes);
  if (check && crc32c(raw.data(), bytes) != expected)
    throw Error(path() + ": checksum mismatch in tensor '" + name + "': the file is corrupt");
  if (t.dtype == "F16") {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      dst[i] = half_to_float(h);
    }
  } else if (t.dtype == "BF16") {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      const uint32_t bits = uint32_t(h) << 16;
      std::memcpy(dst + i, &bits, 4);
    }
  } else if (t.dtype == "F64") {
    for (int64_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, raw.data() + 8 * i, 8);
      dst[i] = static_cast<float>(d);
    }
  } else {
    throw Error(path() + ": tensor '" + name + "' has dtype " + t.dtype + ", expected a floating-point type");
  }
}

void SafetensorsReader::read_f32_range(const std::string& name, int64_t first, int64_t count, float* dst) const {
  const TensorInfo& t = at(name);
  if (t.dtype != "F32") throw Error(path() + ": tensor '" + name + "' is " + t.dtype + ", expected F32");
  if (first < 0 || count < 0 || first + count > t.numel())
    throw Error(path() + ": element range out of bounds in tensor '" + name + "'");
  file_->read_at(data_start_ + t.begin + static_cast<uint64_t>(first) * 4, dst, static_cast<size_t>(count) * 4);
}

}  // namespace erlangshen::ckpt
