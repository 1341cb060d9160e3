#include "checkpoint/crc32c.h"

#include <array>
#include <cstdio>
#include <cstring>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace erlangshen::ckpt {
namespace {

#if defined(__SSE4_2__)

// The crc32 instruction has a latency of 3 cycles and a throughput of one per cycle: a single dependent chain
// uses a third of it. Large inputs are therefore taken kBlock bytes x 3 at a time, one chain per block, and the
// three CRCs joined: CRC(A B) = shift(CRC(A)) ^ CRC(B) where shift advances a CRC register over kBlock zero
// bytes and CRC(B) starts from a zero register.
constexpr size_t kBlock = 8192;

uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

// shift() over kBlock zero bytes is linear over GF(2) in the register, so it is tabulated once per register
// byte: shift(c) = t[0][byte 0 of c] ^ t[1][byte 1] ^ t[2][byte 2] ^ t[3][byte 3].
struct BlockShift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  BlockShift() {
    std::array<uint32_t, 32> bit{};  // shift of each single-bit register
    for (int b = 0; b < 32; ++b) {
      uint64_t c = uint64_t(1) << b;
      for (size_t i = 0; i < kBlock; i += 8) c = _mm_crc32_u64(c, 0);
      bit[b] = static_cast<uint32_t>(c);
    }
    for (int k = 0; k < 4; ++k)
      for (uint32_t v = 0; v < 256; ++v)
        for (int b = 0; b < 8; ++b)
          if ((v >> b) & 1u) t[k][v] ^= bit[8 * k + b];
  }
  uint32_t operator()(uint32_t c) const {
    return t[0][c & 0xFF] ^ t[1][(c >> 8) & 0xFF] ^ t[2][(c >> 16) & 0xFF] ^ t[3][c >> 24];
  }
};

const BlockShift& block_shift() {
  static const BlockShift s;  // immutable after construction
  return s;
}

// Advances register `c` (not inverted) over n bytes.
uint32_t crc_register(uint32_t c, const uint8_t* p, size_t n) {
  if (n >= 3 * kBlock) {
    const BlockShift& shift = block_shift();
    for (; n >= 3 * kBlock; n -= 3 * kBlock, p += 3 * kBlock) {
      uint64_t c0 = c, c1 = 0, c2 = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        c0 = _mm_crc32_u64(c0, load64(p + i));
        c1 = _mm_crc32_u64(c1, load64(p + kBlock + i));
        c2 = _mm_crc32_u64(c2, load64(p + 2 * kBlock + i));
      }
      c = shift(shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1)) ^ static_cast<uint32_t>(c2);
    }
  }
  uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) c64 = _mm_crc32_u64(c64, load64(p));
  c = static_cast<uint32_t>(c64);
  for (; n > 0; --n, ++p) c = _mm_crc32_u8(c, *p);
  return c;
}

#else

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// Slicing-by-8 tables: t[s][b] is the register after byte b followed by s zero bytes.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (kPoly & (0u - (c & 1u)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

const Tables& tables() {
  static const Tables t;  // immutable after construction
  return t;
}

// Advances register `c` (not inverted) over n bytes.
uint32_t crc_register(uint32_t c, const uint8_t* p, size_t n) {
  const auto& t = tables().t;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
  return c;
}

#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  return ~crc_register(~crc, static_cast<const uint8_t*>(data), n);
}

std::string crc32c_hex(uint32_t crc) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

}  // namespace erlangshen::ckpt
