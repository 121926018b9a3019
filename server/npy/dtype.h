// The NumPy dtypes npystream carries, and the shape/dtype of one array.
#ifndef NPYSTREAM_SERVER_NPY_DTYPE_H_
#define NPYSTREAM_SERVER_NPY_DTYPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream::npy {

// Little-endian numeric dtypes; the order is stable (used in tests only).
enum class DType {
  kBool,
  kInt8,
  kUInt8,
  kInt16,
  kUInt16,
  kInt32,
  kUInt32,
  kInt64,
  kUInt64,
  kFloat16,
  kFloat32,
  kFloat64,
  kComplex64,
  kComplex128,
};

inline constexpr int kNumDTypes = 14;
// NumPy 1.x refuses arrays of more dimensions (NPY_MAXDIMS).
inline constexpr int kMaxNdim = 32;

// The descr numpy.save writes for `dtype`: "<f4", "|b1", "<c16", ...
const char* Descr(DType dtype);
// The numpy name: "float32", "bool", ...
const char* Name(DType dtype);
// Bytes per element.
int ItemSize(DType dtype);

// Maps a header descr to a DType. Accepts what numpy.save writes, plus '<'
// for one-byte types. INVALID_ARGUMENT naming the descr for big-endian,
// structured, string, object, datetime and other dtypes npystream lacks.
absl::StatusOr<DType> DTypeFromDescr(absl::string_view descr);

// Shape and dtype of one array. Dimensions are non-negative.
struct ArrayMeta {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  bool fortran_order = false;

  uint64_t NumElements() const;
  uint64_t NumBytes() const { return NumElements() * ItemSize(dtype); }
};

// INVALID_ARGUMENT when a dimension is negative, ndim exceeds kMaxNdim, or
// elements * itemsize overflows 63 bits.
absl::Status ValidateMeta(const ArrayMeta& meta);

}  // namespace npystream::npy

#endif  // NPYSTREAM_SERVER_NPY_DTYPE_H_
