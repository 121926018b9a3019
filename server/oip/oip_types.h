// The Open Inference Protocol's datatype names ("FP32", "BF16", ...) and
// npy dtypes: the one table both the gRPC and the REST edge use.
#ifndef NPYSTREAM_SERVER_OIP_OIP_TYPES_H_
#define NPYSTREAM_SERVER_OIP_OIP_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/npy/dtype.h"

namespace npystream::oip {

// What GET /v2 and ServerMetadata report.
constexpr char kServerName[] = "npystreamd";
constexpr char kServerVersion[] = "0.4.0";
constexpr char kPlatform[] = "pytorch_libtorch";
std::vector<std::string> ServerExtensions();

// How an element travels and how it is stored. LibTorch 1.13 has neither
// bfloat16 in NumPy's sense nor unsigned integers wider than 8 bits, so
// those are widened exactly on the way in: BF16 -> float32, UINT16 -> int32,
// UINT32 -> int64, UINT64 -> int64 (values above INT64_MAX are refused).
struct WireType {
  enum class Widen { kNone, kBf16, kUInt16, kUInt32, kUInt64 };
  npy::DType dtype;   // how the tensor is stored
  size_t wire_bytes;  // bytes per element on the wire
  Widen widen = Widen::kNone;
};

// INVALID_ARGUMENT naming `datatype` for BYTES and unknown names.
absl::StatusOr<WireType> ParseDatatype(absl::string_view datatype);
// The protocol's name for a stored dtype; "" for complex (no such datatype).
const char* DatatypeName(npy::DType dtype);
// Triton's ModelConfig DataType enum value (0: invalid).
int ConfigDataType(npy::DType dtype);

// Elements of `shape`; INVALID_ARGUMENT naming `input` for a negative
// dimension or a count past 2^62.
absl::StatusOr<uint64_t> ElementCount(const std::vector<int64_t>& shape, absl::string_view input);

// bfloat16 bits (little-endian) -> float32, exactly. `out` holds n floats.
void WidenBf16(const char* in, size_t n, float* out);
// `n` elements of `type` as they travel -> as stored (`out` holds n stored
// elements). INVALID_ARGUMENT for a UINT64 above INT64_MAX.
absl::Status WidenElements(const WireType& type, const char* in, size_t n, char* out);

}  // namespace npystream::oip

#endif  // NPYSTREAM_SERVER_OIP_OIP_TYPES_H_
