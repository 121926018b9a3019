#include "server/engine/blas_info.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>

#include <string>

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

// The file a dladdr'd symbol lives in, symlinks resolved; empty when none.
std::string FileOf(void* symbol) {
  Dl_info where{};
  if (symbol == nullptr || dladdr(symbol, &where) == 0 || where.dli_fname == nullptr) return "";
  char real[PATH_MAX];
  return realpath(where.dli_fname, real) != nullptr ? real : where.dli_fname;
}

// OpenBLAS's function `name`, only when it comes from the folder of
// `library`, the file that defines sgemm_ (Debian's libblas.so.3 for
// OpenBLAS is a shim beside libopenblas.so.0): OpenBLAS's LAPACK may be loaded
// beside another BLAS. Null otherwise.
void* OpenBlasFunction(const char* name, const std::string& library) {
  void* f = dlsym(RTLD_DEFAULT, name);
  return f != nullptr && Folder(FileOf(f)) == Folder(library) ? f : nullptr;
}

}  // namespace

BlasInfo ProbeBlas() {
  BlasInfo info;
  info.library = FileOf(dlsym(RTLD_DEFAULT, "sgemm_"));
  if (info.library.empty()) return info;
  if (void* config = OpenBlasFunction("openblas_get_config", info.library)) {
    info.openblas = reinterpret_cast<char* (*)()>(config)();
    if (void* parallel = OpenBlasFunction("openblas_get_parallel", info.library)) {
      const int mode = reinterpret_cast<int (*)()>(parallel)();
      info.threading = mode == 0 ? "serial" : mode == 1 ? "pthreads" : "openmp";
    }
    if (void* threads = OpenBlasFunction("openblas_get_num_threads", info.library)) {
      info.threads = reinterpret_cast<int (*)()>(threads)();
    }
  }
  info.reference = info.openblas.empty() && absl::StrContains(info.library, kReferenceFolder);
  return info;
}

BlasInfo LimitBlasThreads(int threads) {
  const BlasInfo info = ProbeBlas();
  if (threads < 1 || info.threading.empty() || info.threading == "serial") return info;
  void* set = OpenBlasFunction("openblas_set_num_threads", info.library);
  if (set == nullptr) return info;
  reinterpret_cast<void (*)(int)>(set)(threads);
  return ProbeBlas();
}

}  // namespace npystream
