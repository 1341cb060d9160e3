// The safetensors format (huggingface/safetensors), written and read here directly:
//   8 bytes   little-endian u64 N = header length
//   N bytes   JSON: {"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
//             (padded with spaces to a multiple of 8)
//   data      the tensors' bytes back to back, row-major, little-endian; offsets are relative to here.
// Our writer stores each tensor's CRC-32C in the metadata as "crc32c.NAME"; the reader checks it on every read
// and names the file and tensor when it fails. Files from elsewhere (no checksums) read fine unverified.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/file_io.h"

namespace erlangshen::ckpt {

struct TensorInfo {
  std::string name;
  std::string dtype;            // "F32", "F16", "BF16", "F64", "I64", "I32", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
};

// Bytes per element of a safetensors dtype; throws for unknown dtypes.
size_t dtype_size(const std::string& dtype);

class SafetensorsWriter {
 public:
  // Adds a float32 tensor; `data` must stay valid until write(). Tensors are stored in the order added.
  void add(std::string name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  struct Written {
    uint64_t bytes = 0;
    std::map<std::string, uint32_t> crc;  // tensor name -> CRC-32C of its bytes
  };
  // Writes and fsyncs `path`: the tensors straight from their memory, checksummed on the way (see
  // stream_write.h). `mid_write`, when set, is called once after about half the data is written (a test hook
  // for crash-safety tests).
  Written write(const std::string& path, const std::function<void()>& mid_write = {}) const;

 private:
  struct Item {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
    size_t bytes;
  };
  // The 8-byte length and the JSON header (padded to a multiple of 8) with these checksums of the items.
  std::string header(const std::vector<uint32_t>& crcs) const;

  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

class SafetensorsReader {
 public:
  // Opens `path` and validates the header (sizes, offsets, dtypes); errors name the file.
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& at(const std::string& name) const;  // throws naming the file
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads a tensor as float32 into dst (numel elements), converting F16/BF16/F64. When the file stores a
  // checksum for it (and `verify`), checks it: a mismatch throws Error naming the file and the tensor.
  void read_f32(const std::string& name, float* dst, bool verify = true) const;
  // Reads elements [first, first + count) of an F32 tensor (no checksum: the caller reads part of it).
  void read_f32_range(const std::string& name, int64_t first, int64_t count, float* dst) const;
  // The stored checksum of a tensor, if any.
  bool stored_crc(const std::string& name, uint32_t* crc) const;

 private:
  std::unique_ptr<InputFile> file_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Metadata key holding a tensor's checksum.
inline std::string crc_key(const std::string& tensor) { return "crc32c." + tensor; }

}  // namespace erlangshen::ckpt
