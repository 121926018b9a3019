// Parsing and printing byte sizes such as "8GiB", "512MiB", "1e9", "4096".
#ifndef NPYSTREAM_SERVER_COMMON_BYTE_SIZE_H_
#define NPYSTREAM_SERVER_COMMON_BYTE_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream {

// Accepts an integer with an optional unit: B, KiB, MiB, GiB, TiB (powers of
// 1024) or KB, MB, GB, TB (powers of 1000); case-insensitive. INVALID_ARGUMENT
// naming the text when it is malformed or overflows 64 bits.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// "1.5 GiB"-style text for logs and messages.
std::string FormatByteSize(uint64_t bytes);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_BYTE_SIZE_H_
