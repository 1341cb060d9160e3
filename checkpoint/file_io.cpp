#include "checkpoint/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "runtime/check.h"

namespace erlangshen::ckpt {
namespace {

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

constexpr size_t kMaxIo = size_t(1) << 30;  // Linux transfers at most ~2 GiB per call

}  // namespace

OutputFile::OutputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(sys_error("cannot create", path));
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, std::min(n, kMaxIo));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_error("cannot write", path_));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void OutputFile::write_at(uint64_t offset, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, std::min(n, kMaxIo), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_error("cannot write", path_));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void OutputFile::start_writeback(uint64_t offset, uint64_t n) {
  // Errors are left to sync(): the kernel records a failed writeback and fsync reports it.
  (void)::sync_file_range(fd_, static_cast<off64_t>(offset), static_cast<off64_t>(n), SYNC_FILE_RANGE_WRITE);
}

void OutputFile::sync() {
  if (::fsync(fd_) != 0) throw Error(sys_error("cannot fsync", path_));
}

void OutputFile::close() {
  if (fd_ < 0) return;
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw Error(sys_error("cannot close", path_));
}

InputFile::InputFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(sys_error("cannot open", path));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw Error(sys_error("cannot stat", path));
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(uint64_t offset, void* dst, size_t n) const {
  if (offset + n > size_)
    throw Error(path_ + ": file is truncated (needs " + std::to_string(offset + n) + " bytes, has " +
                std::to_string(size_) + ")");
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, std::min(n, kMaxIo), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_error("cannot read", path_));
    }
    if (r == 0) throw Error(path_ + ": unexpected end of file");
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(sys_error("cannot open directory", dir));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(sys_error("cannot fsync directory", dir));
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    OutputFile f(tmp);
    f.write(text.data(), text.size());
    f.sync();
    f.close();
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw Error(sys_error("cannot rename " + tmp + " to", path));
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  sync_directory(parent.empty() ? "." : parent.string());
}

std::string read_text_file(const std::string& path) {
  InputFile f(path);
  std::string s(f.size(), '\0');
  if (!s.empty()) f.read_at(0, s.data(), s.size());
  return s;
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw Error(path + ": malformed JSON (" + e.what() + ")");
  }
}

void copy_file_synced(const std::string& from, const std::string& to) {
  const std::string data = read_text_file(from);
  OutputFile f(to);
  f.write(data.data(), data.size());
  f.sync();
  f.close();
}

}  // namespace erlangshen::ckpt
