// Small POSIX file helpers for checkpoints: whole-buffer and positioned writes, positioned reads, all reporting
// the file and the system error; early writeback, fsync of files and directories, and atomic replacement of
// small text files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace erlangshen::ckpt {

// A file opened for writing (created or truncated). Every failure throws Error naming the path.
class OutputFile {
 public:
  explicit OutputFile(const std::string& path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  // Appends at the current position (not to be mixed with write_at on the same file).
  void write(const void* data, size_t n);
  // Writes at `offset`, leaving the position alone.
  void write_at(uint64_t offset, const void* data, size_t n);
  // Asks the kernel to start writing bytes [offset, offset + n) to disk now, without waiting (sync_file_range):
  // the disk then works while the caller produces the next bytes, instead of all at the final sync(). Only a
  // hint: it promises nothing about durability, and a write error shows up at sync().
  void start_writeback(uint64_t offset, uint64_t n);
  void sync();   // fsync: data and size are on disk
  void close();  // idempotent
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// A file opened for positioned reads.
class InputFile {
 public:
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at `offset` (throws naming the file when it is shorter).
  void read_at(uint64_t offset, void* dst, size_t n) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// fsync of a directory (makes renames and new entries in it durable).
void sync_directory(const std::string& dir);
// Writes `text` to `path` durably and atomically: `path`.tmp, fsync, rename over `path`, fsync the directory.
void write_file_atomic(const std::string& path, const std::string& text);
// Whole file as a string (throws naming the file).
std::string read_text_file(const std::string& path);
// Whole file parsed as JSON (throws naming the file, also for malformed JSON).
nlohmann::json read_json_file(const std::string& path);
// Copies a file durably (fsync).
void copy_file_synced(const std::string& from, const std::string& to);

}  // namespace erlangshen::ckpt
