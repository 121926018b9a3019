// TSan shims only (tsan_absl.cc, tsan_grpc.cc): finding the library's own
// definition of a function the executable interposes.
#ifndef NPYSTREAM_SERVER_TESTING_TSAN_INTERPOSE_H_
#define NPYSTREAM_SERVER_TESTING_TSAN_INTERPOSE_H_

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace npystream::testing {

// The next definition of the symbol `name` after the executable's (the
// library's, found with dlsym(RTLD_NEXT)), as an F. Aborts, naming the
// symbol, when no library defines it.
template <typename F>
F NextDefinition(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "TSan shim: no library defines %s\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

}  // namespace npystream::testing

#endif  // NPYSTREAM_SERVER_TESTING_TSAN_INTERPOSE_H_
