#include "server/store/torch_dtype.h"

#include "absl/strings/str_cat.h"

namespace npystream {

c10::ScalarType StorageTypeOf(npy::DType dtype) {
  switch (dtype) {
    case npy::DType::kBool:
      return c10::ScalarType::Bool;
    case npy::DType::kInt8:
      return c10::ScalarType::Char;
    case npy::DType::kUInt8:
      return c10::ScalarType::Byte;
    case npy::DType::kInt16:
    case npy::DType::kUInt16:
      return c10::ScalarType::Short;
    case npy::DType::kInt32:
    case npy::DType::kUInt32:
      return c10::ScalarType::Int;
    case npy::DType::kInt64:
    case npy::DType::kUInt64:
      return c10::ScalarType::Long;
    case npy::DType::kFloat16:
      return c10::ScalarType::Half;
    case npy::DType::kFloat32:
      return c10::ScalarType::Float;
    case npy::DType::kFloat64:
      return c10::ScalarType::Double;
    case npy::DType::kComplex64:
      return c10::ScalarType::ComplexFloat;
    case npy::DType::kComplex128:
      return c10::ScalarType::ComplexDouble;
  }
  return c10::ScalarType::Byte;
}

absl::StatusOr<npy::DType> NpyDTypeOf(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Bool:
      return npy::DType::kBool;
    case c10::ScalarType::Char:
      return npy::DType::kInt8;
    case c10::ScalarType::Byte:
      return npy::DType::kUInt8;
    case c10::ScalarType::Short:
      return npy::DType::kInt16;
    case c10::ScalarType::Int:
      return npy::DType::kInt32;
    case c10::ScalarType::Long:
      return npy::DType::kInt64;
    case c10::ScalarType::Half:
      return npy::DType::kFloat16;
    case c10::ScalarType::Float:
      return npy::DType::kFloat32;
    case c10::ScalarType::Double:
      return npy::DType::kFloat64;
    case c10::ScalarType::ComplexFloat:
      return npy::DType::kComplex64;
    case c10::ScalarType::ComplexDouble:
      return npy::DType::kComplex128;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("torch dtype ", c10::toString(type), " has no numpy equivalent"));
  }
}

c10::Device TorchDeviceOf(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::DeviceType::CPU);
  return c10::Device(c10::DeviceType::CUDA,
                     static_cast<c10::DeviceIndex>(std::stoi(name.substr(5))));
}

}  // namespace npystream
