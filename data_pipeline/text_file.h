// Reading a whole input file (vocabulary, dictionary, lexicon) with errors that name it.
#pragma once
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "runtime/check.h"

namespace erlangshen::data {

// The bytes of `path`, or "cannot open WHAT PATH: reason".
inline std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// As read_text_file, and "WHAT PATH is empty" for an empty file.
inline std::string read_nonempty_file(const std::string& path, const char* what) {
  std::string bytes = read_text_file(path, what);
  if (bytes.empty()) throw Error(std::string(what) + " " + path + " is empty");
  return bytes;
}

// f(line_no, line) for each '\n'-separated line of `bytes` (line_no from 1; the line without its '\n', a '\r'
// kept; no empty line after a final '\n').
template <class F>
void for_each_line(std::string_view bytes, F&& f) {
  size_t start = 0, line_no = 0;
  while (start < bytes.size()) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) nl = bytes.size();
    f(++line_no, bytes.substr(start, nl - start));
    start = nl + 1;
  }
}

}  // namespace erlangshen::data
