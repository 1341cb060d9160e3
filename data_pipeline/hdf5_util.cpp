#include "data_pipeline/hdf5_util.h"

#include "runtime/check.h"

namespace erlangshen::data::h5 {

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_, kind_ = o.kind_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  H5E_BEGIN_TRY {
    switch (kind_) {
      case File: H5Fclose(id_); break;
      case Dataset: H5Dclose(id_); break;
      case Dataspace: H5Sclose(id_); break;
      case Attribute: H5Aclose(id_); break;
      case Datatype: H5Tclose(id_); break;
      case Plist: H5Pclose(id_); break;
      case Group: H5Gclose(id_); break;
    }
  }
  H5E_END_TRY;
  id_ = -1;
}

template <> hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }

void write_string_attr(hid_t obj, const std::string& file, const char* name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), Handle::Datatype);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), Handle::Dataspace);
  Handle attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), Handle::Attribute);
  const char* p = value.c_str();
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), &p) < 0)
    throw Error("cannot write attribute '" + std::string(name) + "' of " + file);
}

void write_int_attr(hid_t obj, const std::string& file, const char* name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), Handle::Dataspace);
  Handle attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), Handle::Attribute);
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0)
    throw Error("cannot write attribute '" + std::string(name) + "' of " + file);
}

bool has_attr(hid_t obj, const char* name) {
  htri_t r;
  H5E_BEGIN_TRY { r = H5Aexists(obj, name); }
  H5E_END_TRY;
  return r > 0;
}

std::string read_string_attr(hid_t obj, const std::string& file, const char* name) {
  Handle attr;
  H5E_BEGIN_TRY { attr = Handle(H5Aopen(obj, name, H5P_DEFAULT), Handle::Attribute); }
  H5E_END_TRY;
  if (!attr.valid()) throw Error(file + ": missing attribute '" + std::string(name) + "'");
  Handle ftype(H5Aget_type(attr.get()), Handle::Datatype);
  if (H5Tget_class(ftype.get()) != H5T_STRING)
    throw Error(file + ": attribute '" + std::string(name) + "' is not a string");
  std::string out;
  herr_t rc;
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), Handle::Datatype);
    H5Tset_size(mtype.get(), H5T_VARIABLE);
    H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get()));
    char* p = nullptr;
    H5E_BEGIN_TRY { rc = H5Aread(attr.get(), mtype.get(), &p); }
    H5E_END_TRY;
    if (rc >= 0 && p) {
      out = p;
      H5free_memory(p);
    }
  } else {
    size_t n = H5Tget_size(ftype.get());
    std::vector<char> buf(n + 1, 0);
    H5E_BEGIN_TRY { rc = H5Aread(attr.get(), ftype.get(), buf.data()); }
    H5E_END_TRY;
    out.assign(buf.data());
  }
  if (rc < 0) throw Error(file + ": cannot read attribute '" + std::string(name) + "'");
  return out;
}

int64_t read_int_attr(hid_t obj, const std::string& file, const char* name) {
  Handle attr;
  H5E_BEGIN_TRY { attr = Handle(H5Aopen(obj, name, H5P_DEFAULT), Handle::Attribute); }
  H5E_END_TRY;
  if (!attr.valid()) throw Error(file + ": missing attribute '" + std::string(name) + "'");
  int64_t v = 0;
  herr_t rc;
  H5E_BEGIN_TRY { rc = H5Aread(attr.get(), H5T_NATIVE_INT64, &v); }
  H5E_END_TRY;
  if (rc < 0) throw Error(file + ": cannot read integer attribute '" + std::string(name) + "'");
  return v;
}

}  // namespace erlangshen::data::h5
