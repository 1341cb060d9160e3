// Character classes of BERT's basic tokenizer (Google's tokenization.py), backed by utf8proc.
//
// A read-only table covers the Basic Multilingual Plane; other code points are classified on the fly.
#pragma once
#include <cstdint>
#include <string>

namespace erlangshen::data {

enum CharFlag : uint8_t {
  kWhitespace = 1,   // ' ', \t, \n, \r or category Zs
  kControl = 2,      // category C* except \t \n \r; also U+0000 and U+FFFD (removed by text cleaning)
  kPunctuation = 4,  // ASCII 33-47, 58-64, 91-96, 123-126, or category P*
  kCjk = 8,          // CJK Unified Ideographs blocks as in tokenization.py's _is_chinese_char
  kChangesOnLower = 16,  // lowercasing + accent stripping changes it
  kCased = 32,       // has case (for Greek final sigma)
  kCaseIgnorable = 64,
};

class CharTable {
 public:
  CharTable();
  uint8_t flags(char32_t c) const { return c < 0x10000 ? bmp_[c] : compute_flags(c); }
  bool is_whitespace(char32_t c) const { return flags(c) & kWhitespace; }
  bool is_control(char32_t c) const { return flags(c) & kControl; }
  bool is_punctuation(char32_t c) const { return flags(c) & kPunctuation; }
  bool is_cjk(char32_t c) const { return flags(c) & kCjk; }

  // Appends lower(c) with accents (Mn after NFD) removed, as tokenization.py does with do_lower_case.
  // `final_sigma` selects ς for Σ (Python's str.lower() context rule).
  void append_lower_stripped(char32_t c, bool final_sigma, std::u32string& out) const;

  static uint8_t compute_flags(char32_t c);
  // The shared immutable instance.
  static const CharTable& get();

 private:
  uint8_t bmp_[0x10000];
};

}  // namespace erlangshen::data
