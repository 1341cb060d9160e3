// SHA-256 (FIPS 180-4), for vocabulary / dictionary / lexicon fingerprints stored in shard attributes.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace erlangshen::data {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex_digest();  // finalises; lower-case hex, 64 characters

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Hash of a file's bytes; throws Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace erlangshen::data
