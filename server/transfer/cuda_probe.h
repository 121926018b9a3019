// Which CUDA devices this process can use.
#ifndef NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_
#define NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_

#include <cstdint>
#include <string>

namespace npystream {

struct CudaProbe {
  int device_count = 0;
  // Why there are none ("built without the CUDA toolkit", "no CUDA-capable
  // device is detected", ...), or the devices' names.
  std::string description;
};

// Asks the CUDA runtime (when compiled in); never fails. Thread-safe.
CudaProbe ProbeCuda();

// Bytes in use on CUDA device `index` (total minus free, cudaMemGetInfo);
// false when unknown (no device, or built without CUDA).
bool CudaMemoryUsed(int index, uint64_t* used);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_
