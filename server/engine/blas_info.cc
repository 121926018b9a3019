#include "server/engine/blas_info.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace npystream {
namespace {

// Debian installs the reference BLAS (package libblas3) in this folder.
constexpr absl::string_view kReferenceFolder = "/blas/libblas.so";

absl::string_view Folder(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash);
}

template <typename F>
F Lookup(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

BlasInfo ProbeBlas() {
  BlasInfo info;
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info where{};
  if (sgemm == nullptr || dladdr(sgemm, &where) == 0 || where.dli_fname == nullptr) return info;
  char real[PATH_MAX];
  info.library = realpath(where.dli_fname, real) != nullptr ? real : where.dli_fname;
  // OpenBLAS's own functions count only when they come from the library
  // that defines sgemm_ or its folder (Debian's libblas.so.3 for OpenBLAS is
  // a shim beside libopenblas.so.0): OpenBLAS's LAPACK may be loaded beside
  // another BLAS.
  void* config = dlsym(RTLD_DEFAULT, "openblas_get_config");
  Dl_info config_where{};
  if (config != nullptr && dladdr(config, &config_where) != 0 &&
      config_where.dli_fname != nullptr &&
      (config_where.dli_fbase == where.dli_fbase ||
       Folder(realpath(config_where.dli_fname, real) != nullptr ? real : "") ==
           Folder(info.library))) {
    info.openblas = reinterpret_cast<char* (*)()>(config)();
    if (auto parallel = Lookup<int (*)()>("openblas_get_parallel")) {
      const int mode = parallel();
      info.threading = mode == 0 ? "serial" : mode == 1 ? "pthreads" : "openmp";
    }
  }
  info.reference = info.openblas.empty() && absl::StrContains(info.library, kReferenceFolder);
  return info;
}

}  // namespace npystream
