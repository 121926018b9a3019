// Mapping between numpy dtypes and LibTorch scalar types.
#ifndef NPYSTREAM_SERVER_STORE_TORCH_DTYPE_H_
#define NPYSTREAM_SERVER_STORE_TORCH_DTYPE_H_

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "absl/status/statusor.h"
#include "server/npy/dtype.h"

namespace npystream {

// The LibTorch type that holds a numpy dtype's bytes (uint16/32/64 map to
// the signed type of the same width: LibTorch 1.13 lacks them).
c10::ScalarType StorageTypeOf(npy::DType dtype);

// The numpy dtype of a LibTorch type. BFloat16 has none (callers convert to
// float32 first); INVALID_ARGUMENT naming the type for it and for quantized
// or other types numpy lacks.
absl::StatusOr<npy::DType> NpyDTypeOf(c10::ScalarType type);

// The LibTorch device for a canonical name from DevicePlan::Resolve: "cpu" or
// "cuda:N".
c10::Device TorchDeviceOf(const std::string& name);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_TORCH_DTYPE_H_
