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

bool CudaMemoryUsed(int index, uint64_t* used) {
#ifdef NPYSTREAM_WITH_CUDA
  if (cudaSetDevice(index) != cudaSuccess) return false;
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return false;
  *used = total - free_bytes;
  return true;
#else
  (void)index;
  (void)used;
  return false;
#endif
}

}  // namespace npystream
