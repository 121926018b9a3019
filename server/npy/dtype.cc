#include "server/npy/dtype.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace npystream::npy {
namespace {

struct DTypeRow {
  DType dtype;
  const char* descr;
  const char* name;
  int itemsize;
};

constexpr DTypeRow kRows[kNumDTypes] = {
    {DType::kBool, "|b1", "bool", 1},           {DType::kInt8, "|i1", "int8", 1},
    {DType::kUInt8, "|u1", "uint8", 1},         {DType::kInt16, "<i2", "int16", 2},
    {DType::kUInt16, "<u2", "uint16", 2},       {DType::kInt32, "<i4", "int32", 4},
    {DType::kUInt32, "<u4", "uint32", 4},       {DType::kInt64, "<i8", "int64", 8},
    {DType::kUInt64, "<u8", "uint64", 8},       {DType::kFloat16, "<f2", "float16", 2},
    {DType::kFloat32, "<f4", "float32", 4},     {DType::kFloat64, "<f8", "float64", 8},
    {DType::kComplex64, "<c8", "complex64", 8}, {DType::kComplex128, "<c16", "complex128", 16},
};

const DTypeRow& Row(DType dtype) { return kRows[static_cast<int>(dtype)]; }

}  // namespace

const char* Descr(DType dtype) { return Row(dtype).descr; }
const char* Name(DType dtype) { return Row(dtype).name; }
int ItemSize(DType dtype) { return Row(dtype).itemsize; }

absl::StatusOr<DType> DTypeFromDescr(absl::string_view descr) {
  if (descr.size() >= 2) {
    const char order = descr[0];
    const absl::string_view kind_size = descr.substr(1);
    for (const DTypeRow& row : kRows) {
      if (kind_size != absl::string_view(row.descr).substr(1)) continue;
      if (order == '<' || (row.itemsize == 1 && order == '|')) return row.dtype;
      if (order == '>' && row.itemsize > 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("npy header: big-endian descr '", descr,
                         "' is not supported (save with arr.astype('<", kind_size, "'))"));
      }
      if (order == '=') {
        return absl::InvalidArgumentError(absl::StrCat("npy header: native-order descr '", descr,
                                                       "' is ambiguous; use '<", kind_size, "'"));
      }
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("npy header: unsupported dtype descr '", descr,
                   "' (supported: bool, int8-64, uint8-64, float16/32/64, complex64/128, "
                   "little-endian)"));
}

uint64_t ArrayMeta::NumElements() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::Status ValidateMeta(const ArrayMeta& meta) {
  if (meta.shape.size() > kMaxNdim) {
    return absl::InvalidArgumentError(
        absl::StrCat("npy header: ndim ", meta.shape.size(), " exceeds ", kMaxNdim));
  }
  // Check elements * itemsize against int64 range with zero-size arrays in
  // mind: a zero anywhere makes the product zero, but each dimension must
  // still be representable.
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  uint64_t n = ItemSize(meta.dtype);
  bool zero = false;
  for (size_t i = 0; i < meta.shape.size(); ++i) {
    const int64_t d = meta.shape[i];
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("npy header: dimension ", i, " is negative (", d, ")"));
    }
    if (d == 0) {
      zero = true;
      continue;
    }
    if (!zero && n > kMax / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(
          absl::StrCat("npy header: shape overflows: the array would exceed 2^63 bytes at "
                       "dimension ",
                       i));
    }
    if (!zero) n *= static_cast<uint64_t>(d);
  }
  return absl::OkStatus();
}

}  // namespace npystream::npy
