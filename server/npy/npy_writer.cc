#include "server/npy/npy_writer.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace npystream::npy {
namespace {

// numpy/lib/format.py constants.
constexpr size_t kArrayAlign = 64;
constexpr size_t kMagicLen = 8;  // "\x93NUMPY" + major + minor
constexpr size_t kGrowthAxisMaxDigits = 21;

// repr() of a Python tuple of ints.
std::string ShapeRepr(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    absl::StrAppend(&out, shape[i]);
  }
  if (shape.size() == 1) out += ",";
  out += ")";
  return out;
}

}  // namespace

std::string WriteHeader(const ArrayMeta& meta) {
  // The dict as numpy formats it: sorted keys, repr() values, trailing ", ".
  std::string dict =
      absl::StrCat("{'descr': '", Descr(meta.dtype),
                   "', 'fortran_order': False, 'shape': ", ShapeRepr(meta.shape), ", }");
  // Spare room so the first axis can grow in place (numpy >= 1.23).
  if (!meta.shape.empty()) {
    const size_t digits = absl::StrCat(meta.shape[0]).size();
    if (digits < kGrowthAxisMaxDigits) {
      dict.append(kGrowthAxisMaxDigits - digits, ' ');
    }
  }
  // Version 1.0 stores the header length in 2 bytes; 2.0 in 4.
  const size_t hlen = dict.size() + 1;  // + '\n'
  size_t len_field = 2;
  size_t padlen = kArrayAlign - ((kMagicLen + len_field + hlen) % kArrayAlign);
  char major = 1;
  if (hlen + padlen > 0xFFFF) {
    len_field = 4;
    padlen = kArrayAlign - ((kMagicLen + len_field + hlen) % kArrayAlign);
    major = 2;
  }
  const uint32_t total = static_cast<uint32_t>(hlen + padlen);

  std::string out;
  out.reserve(kMagicLen + len_field + total);
  out.append("\x93NUMPY", 6);
  out.push_back(major);
  out.push_back(0);
  for (size_t i = 0; i < len_field; ++i) {
    out.push_back(static_cast<char>((total >> (8 * i)) & 0xFF));
  }
  out += dict;
  out.append(padlen, ' ');
  out.push_back('\n');
  return out;
}

}  // namespace npystream::npy
