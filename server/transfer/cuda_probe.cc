#include "server/transfer/cuda_probe.h"

#include "absl/strings/str_cat.h"

#ifdef NPYSTREAM_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace npystream {

CudaProbe ProbeCuda() {
  CudaProbe probe;
#ifdef NPYSTREAM_WITH_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    probe.description = absl::StrCat("no CUDA device: ", cudaGetErrorString(err));
    return probe;
  }
  probe.device_count = count;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
      absl::StrAppend(&probe.description, i ? ", " : "", "cuda:", i, " ", prop.name);
    }
  }
  if (count == 0) probe.description = "no CUDA device";
#else
  probe.description = "no CUDA device: built without the CUDA toolkit";
#endif
  return probe;
}

}  // namespace npystream
