// Which BLAS LibTorch's matrix products call. Debian's LibTorch is built
// against the generic libblas.so.3, so the implementation is whatever the
// system's alternatives pick: OpenBLAS, or the reference BLAS, which makes
// Linear layers several times slower (README "Inference").
#ifndef NPYSTREAM_SERVER_ENGINE_BLAS_INFO_H_
#define NPYSTREAM_SERVER_ENGINE_BLAS_INFO_H_

#include <string>

namespace npystream {

struct BlasInfo {
  std::string library;     // the file that defines sgemm_; empty when none is loaded
  std::string openblas;    // OpenBLAS's own configuration line; empty when not OpenBLAS
  std::string threading;   // OpenBLAS's: "serial", "pthreads" or "openmp"; else empty
  int threads = 0;         // OpenBLAS's threads per call; 0 when not OpenBLAS
  bool reference = false;  // the reference implementation (Debian's libblas3)
};

// The BLAS loaded in this process (looked up by symbol, nothing is loaded).
// Thread-safe.
BlasInfo ProbeBlas();

// A threaded OpenBLAS (pthreads or OpenMP) starts a thread per core in each
// call, on top of LibTorch's own threads and model instances, which
// oversubscribes the cores. Sets its threads per call to `threads` (>= 1) and
// returns ProbeBlas() after; a serial or other BLAS is left as it is. Call at
// start, before inference.
BlasInfo LimitBlasThreads(int threads);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_BLAS_INFO_H_
