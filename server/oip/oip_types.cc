#include "server/oip/oip_types.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace npystream::oip {
namespace {

struct Entry {
  const char* name;
  npy::DType dtype;
  int config;  // Triton's DataType enum
};

constexpr Entry kTable[] = {
    {"BOOL", npy::DType::kBool, 1},     {"UINT8", npy::DType::kUInt8, 2},
    {"UINT16", npy::DType::kUInt16, 3}, {"UINT32", npy::DType::kUInt32, 4},
    {"UINT64", npy::DType::kUInt64, 5}, {"INT8", npy::DType::kInt8, 6},
    {"INT16", npy::DType::kInt16, 7},   {"INT32", npy::DType::kInt32, 8},
    {"INT64", npy::DType::kInt64, 9},   {"FP16", npy::DType::kFloat16, 10},
    {"FP32", npy::DType::kFloat32, 11}, {"FP64", npy::DType::kFloat64, 12},
};

}  // namespace

std::vector<std::string> ServerExtensions() {
  return {"model_repository", "statistics", "binary_tensor_data", "npystream_keep",
          "npystream_capture"};
}

absl::StatusOr<WireType> ParseDatatype(absl::string_view datatype) {
  using W = WireType::Widen;
  if (datatype == "BF16") return WireType{npy::DType::kFloat32, 2, W::kBf16};
  if (datatype == "UINT16") return WireType{npy::DType::kInt32, 2, W::kUInt16};
  if (datatype == "UINT32") return WireType{npy::DType::kInt64, 4, W::kUInt32};
  if (datatype == "UINT64") return WireType{npy::DType::kInt64, 8, W::kUInt64};
  for (const Entry& e : kTable) {
    if (datatype == e.name)
      return WireType{e.dtype, static_cast<size_t>(npy::ItemSize(e.dtype)), W::kNone};
  }
  if (datatype == "BYTES") {
    return absl::InvalidArgumentError("datatype BYTES is not served (numeric tensors only)");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown datatype '", datatype,
                   "' (use BOOL, UINT8..UINT64, INT8..INT64, FP16, BF16, FP32 or FP64)"));
}

const char* DatatypeName(npy::DType dtype) {
  for (const Entry& e : kTable) {
    if (e.dtype == dtype) return e.name;
  }
  return "";
}

int ConfigDataType(npy::DType dtype) {
  for (const Entry& e : kTable) {
    if (e.dtype == dtype) return e.config;
  }
  return 0;
}

absl::StatusOr<uint64_t> ElementCount(const std::vector<int64_t>& shape, absl::string_view input) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input, "': shape has a negative dimension ", d));
    }
    if (d != 0 && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(absl::StrCat("input '", input, "': shape is too large"));
    }
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

void WidenBf16(const char* in, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t half;
    std::memcpy(&half, in + 2 * i, 2);
    const uint32_t bits = static_cast<uint32_t>(half) << 16;
    std::memcpy(&out[i], &bits, 4);
  }
}

}  // namespace npystream::oip

namespace npystream::oip {

absl::Status WidenElements(const WireType& type, const char* in, size_t n, char* out) {
  using W = WireType::Widen;
  switch (type.widen) {
    case W::kBf16:
      WidenBf16(in, n, reinterpret_cast<float*>(out));
      return absl::OkStatus();
    case W::kUInt16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, in + 2 * i, 2);
        const int32_t w = v;
        std::memcpy(out + 4 * i, &w, 4);
      }
      return absl::OkStatus();
    case W::kUInt32:
      for (size_t i = 0; i < n; ++i) {
        uint32_t v;
        std::memcpy(&v, in + 4 * i, 4);
        const int64_t w = v;
        std::memcpy(out + 8 * i, &w, 8);
      }
      return absl::OkStatus();
    case W::kUInt64:
      for (size_t i = 0; i < n; ++i) {
        uint64_t v;
        std::memcpy(&v, in + 8 * i, 8);
        if (v > static_cast<uint64_t>(INT64_MAX)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "UINT64 value ", v, " exceeds INT64_MAX (LibTorch has no uint64 tensors)"));
        }
        std::memcpy(out + 8 * i, &v, 8);
      }
      return absl::OkStatus();
    case W::kNone:
      std::memcpy(out, in, n * type.wire_bytes);
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace npystream::oip
