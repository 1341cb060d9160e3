// Thin RAII wrappers over the HDF5 C API with errors that name the file and dataset. HDF5's own error stack
// printing is suppressed around each call (H5E_BEGIN_TRY), so failures surface only as erlangshen::Error.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace erlangshen::data::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  enum Kind { File, Dataset, Dataspace, Attribute, Datatype, Plist, Group };
  Handle() = default;
  Handle(hid_t id, Kind kind) : id_(id), kind_(kind) {}
  Handle(Handle&& o) noexcept : id_(o.id_), kind_(o.kind_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Kind kind_ = File;
};

// Native type of a C++ element type.
template <typename T> hid_t native_type();

// File-level helpers (throw Error naming `file` and `name`).
void write_string_attr(hid_t obj, const std::string& file, const char* name, const std::string& value);
void write_int_attr(hid_t obj, const std::string& file, const char* name, int64_t value);
bool has_attr(hid_t obj, const char* name);
std::string read_string_attr(hid_t obj, const std::string& file, const char* name);
int64_t read_int_attr(hid_t obj, const std::string& file, const char* name);

}  // namespace erlangshen::data::h5
