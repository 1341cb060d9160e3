// Writing large in-memory data (the tensors of a safetensors file) into a file at the disk's pace, checksummed
// on the way.
//
// The pieces are taken in chunks of 1 MiB: CRC-32C of the chunk (which brings it into cache), then pwrite of the
// chunk straight from the caller's memory (no staging copy), and after every 8 MiB a start_writeback of what was
// written, so that the disk writes while the next chunks are copied instead of all at the final fsync. The
// data is read from memory once and nothing is read back from the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "checkpoint/file_io.h"

namespace erlangshen::ckpt {

struct FilePiece {
  const void* data;
  size_t bytes;
};

// Writes the pieces into `f` back to back from byte `offset` on and returns the CRC-32C of each. `halfway`,
// when set, is called once after about half the bytes are written (a crash-test hook; with no data, at the
// end). Does not sync.
std::vector<uint32_t> write_pieces(OutputFile& f, uint64_t offset, const std::vector<FilePiece>& pieces,
                                   const std::function<void()>& halfway = {});

}  // namespace erlangshen::ckpt
