#include "data_pipeline/utf8.h"

namespace erlangshen::data {

namespace {

// Decodes one code point at text[i]; returns its length in bytes, or 0 when the sequence is invalid (then
// `skip` is the length of the maximal invalid prefix, at least 1).
inline size_t decode_one(const unsigned char* s, size_t n, size_t i, char32_t& cp, size_t& skip) {
  unsigned char c = s[i];
  if (c < 0x80) {
    cp = c;
    return 1;
  }
  size_t len;
  char32_t v;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    skip = 1;
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) {
      skip = k;
      return 0;
    }
    unsigned char b = s[i + k];
    unsigned char blo = k == 1 ? lo : 0x80, bhi = k == 1 ? hi : 0xBF;
    if (b < blo || b > bhi) {
      skip = k;
      return 0;
    }
    v = (v << 6) | (b & 0x3F);
  }
  cp = v;
  return len;
}

}  // namespace

size_t decode_utf8(std::string_view text, std::u32string& out) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t bad = 0;
  out.reserve(out.size() + n);
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {  // ASCII fast path
      out.push_back(s[i++]);
      continue;
    }
    char32_t cp;
    size_t skip = 0;
    size_t len = decode_one(s, n, i, cp, skip);
    if (len) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kReplacementChar);
      ++bad;
      i += skip;
    }
  }
  return bad;
}

bool is_valid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0, n = text.size();
  while (i < n) {
    char32_t cp;
    size_t skip;
    size_t len = decode_one(s, n, i, cp, skip);
    if (!len) return false;
    i += len;
  }
  return true;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size() * 3);
  for (char32_t c : cps) append_utf8(c, out);
  return out;
}

}  // namespace erlangshen::data
