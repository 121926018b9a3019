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
  bool reference = false;  // the reference implementation (Debian's libblas3)
};

// The BLAS loaded in this process (looked up by symbol, nothing is loaded).
// Thread-safe.
BlasInfo ProbeBlas();

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_ENGINE_BLAS_INFO_H_
