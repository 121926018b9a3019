// libFuzzer target: the --config JSON never crashes the parser; what it
// accepts is applied to a valid DaemonConfig.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/daemon_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  npystream::DaemonConfig config;
  const absl::Status s = npystream::ApplyConfigJson(
      absl::string_view(reinterpret_cast<const char*>(data), size), &config);
  if (s.ok() && (config.max_ndim < 0 || config.copy_streams < 0)) std::abort();
  if (!s.ok() && s.message().empty()) std::abort();
  return 0;
}
