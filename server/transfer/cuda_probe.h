// Which CUDA devices this process can use.
#ifndef NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_
#define NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_

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

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_TRANSFER_CUDA_PROBE_H_
