// UTF-8 decoding and encoding. Invalid byte sequences become U+FFFD and are counted, never thrown.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace erlangshen::data {

constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes `text` into code points (appended to `out`). Each maximal invalid subsequence (overlong forms,
// surrogates, values over U+10FFFF, truncated sequences, stray continuation bytes) becomes one U+FFFD.
// Returns the number of replacements made.
size_t decode_utf8(std::string_view text, std::u32string& out);

// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(char32_t cp, std::string& out);
std::string encode_utf8(std::u32string_view cps);

// True when `text` is valid UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace erlangshen::data
