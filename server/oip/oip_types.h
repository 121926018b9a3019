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

struct WireType {
  npy::DType dtype;   // how the tensor is stored (BF16: widened to float32)
  size_t wire_bytes;  // bytes per element on the wire
  bool bf16 = false;
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

}  // namespace npystream::oip

#endif  // NPYSTREAM_SERVER_OIP_OIP_TYPES_H_
