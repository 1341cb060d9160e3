#include "checkpoint/stream_write.h"

#include <algorithm>

#include "checkpoint/crc32c.h"

namespace erlangshen::ckpt {
namespace {

// 1 MiB chunks fit in L2, so pwrite copies what the checksum has just read. Measured on the development VM,
// writes of 4 MiB and more made the copy into the page cache 3-5x slower (README, checkpoint benchmark).
constexpr size_t kChunk = size_t(1) << 20;
constexpr uint64_t kWriteback = uint64_t(8) << 20;  // start_writeback once this much is waiting

}  // namespace

std::vector<uint32_t> write_pieces(OutputFile& f, uint64_t offset, const std::vector<FilePiece>& pieces,
                                   const std::function<void()>& halfway) {
  uint64_t total = 0;
  for (const auto& p : pieces) total += p.bytes;
  bool hooked = !halfway;
  std::vector<uint32_t> crcs(pieces.size(), 0);
  uint64_t pos = offset, waiting_from = offset;  // [waiting_from, pos): written, writeback not started yet
  for (size_t i = 0; i < pieces.size(); ++i) {
    const char* data = static_cast<const char*>(pieces[i].data);
    uint32_t crc = 0;
    for (size_t done = 0; done < pieces[i].bytes;) {
      const size_t n = std::min(kChunk, pieces[i].bytes - done);
      crc = crc32c(data + done, n, crc);
      f.write_at(pos, data + done, n);
      done += n;
      pos += n;
      if (pos - waiting_from >= kWriteback) f.start_writeback(waiting_from, pos - waiting_from), waiting_from = pos;
      if (!hooked && pos - offset >= total / 2) halfway(), hooked = true;
    }
    crcs[i] = crc;
  }
  if (pos > waiting_from) f.start_writeback(waiting_from, pos - waiting_from);
  if (!hooked) halfway();
  return crcs;
}

}  // namespace erlangshen::ckpt
