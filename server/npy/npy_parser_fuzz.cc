// libFuzzer target: the parser never crashes, hangs or reads out of bounds,
// and whatever it accepts re-serializes to a header it accepts again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "server/npy/npy_parser.h"
#include "server/npy/npy_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<size_t> header_size = npystream::npy::PeekHeaderSize(input);
  if (!header_size.ok() || *header_size == 0 || *header_size > size) return 0;
  absl::StatusOr<npystream::npy::ArrayMeta> meta =
      npystream::npy::ParseHeader(input.substr(0, *header_size));
  if (!meta.ok()) return 0;
  const std::string again = npystream::npy::WriteHeader(*meta);
  absl::StatusOr<npystream::npy::ArrayMeta> back = npystream::npy::ParseHeader(again);
  if (!back.ok() || back->shape != meta->shape || back->dtype != meta->dtype) {
    std::abort();
  }
  return 0;
}
