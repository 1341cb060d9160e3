#include "data_pipeline/unicode_props.h"

#include <utf8proc.h>

namespace erlangshen::data {

namespace {

bool cjk_block(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// lower(c) then NFD, dropping nonspacing marks. Returns the number of code points written to out[0..8).
int lower_strip(char32_t c, bool final_sigma, utf8proc_int32_t out[8]) {
  if (c == 0x130) {  // Python: 'İ'.lower() == 'i̇' (i + U+0307); the mark is then stripped
    out[0] = 'i';
    return 1;
  }
  utf8proc_int32_t lc = (c == 0x3A3 && final_sigma) ? 0x3C2 : utf8proc_tolower(static_cast<utf8proc_int32_t>(c));
  utf8proc_int32_t buf[8];
  int last_boundclass = 0;
  utf8proc_ssize_t n = utf8proc_decompose_char(lc, buf, 8, UTF8PROC_DECOMPOSE, &last_boundclass);
  int k = 0;
  if (n < 0 || n > 8) {
    out[0] = lc;
    return 1;
  }
  for (utf8proc_ssize_t i = 0; i < n; ++i)
    if (utf8proc_category(buf[i]) != UTF8PROC_CATEGORY_MN) out[k++] = buf[i];
  return k;
}

}  // namespace

uint8_t CharTable::compute_flags(char32_t c) {
  uint8_t f = 0;
  auto cp = static_cast<utf8proc_int32_t>(c);
  utf8proc_category_t cat = utf8proc_category(cp);
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || cat == UTF8PROC_CATEGORY_ZS) f |= kWhitespace;
  if (c != '\t' && c != '\n' && c != '\r') {
    if (cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CS ||
        cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CN)
      f |= kControl;
  }
  if (c == 0 || c == 0xFFFD) f |= kControl;
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
      (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO))
    f |= kPunctuation;
  if (cjk_block(c)) f |= kCjk;
  if (c <= 0x10FFFF) {
    utf8proc_int32_t out[8];
    int n = lower_strip(c, false, out);
    if (n != 1 || out[0] != cp) f |= kChangesOnLower;
    if (c == 0x3A3) f |= kChangesOnLower;
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
        utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp)
      f |= kCased;
    if (cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
        cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK || c == '\'' || c == '.' || c == ':' ||
        c == 0x2019 || c == 0xB7)
      f |= kCaseIgnorable;
  }
  return f;
}

CharTable::CharTable() {
  for (char32_t c = 0; c < 0x10000; ++c) bmp_[c] = compute_flags(c);
}

const CharTable& CharTable::get() {
  static const CharTable table;
  return table;
}

void CharTable::append_lower_stripped(char32_t c, bool final_sigma, std::u32string& out) const {
  if (!(flags(c) & kChangesOnLower)) {
    out.push_back(c);
    return;
  }
  utf8proc_int32_t buf[8];
  int n = lower_strip(c, final_sigma, buf);
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char32_t>(buf[i]));
}

}  // namespace erlangshen::data
