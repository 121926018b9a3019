// libFuzzer target: a model's config.json never crashes the parser, and a
// parsed config keeps its invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/engine/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config =
      npystream::ParseModelConfig(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (config.ok() && config->instances == 0) std::abort();
  return 0;
}
