// A strict, bounded parser for .npy headers (format versions 1.0, 2.0, 3.0).
#ifndef NPYSTREAM_SERVER_NPY_NPY_PARSER_H_
#define NPYSTREAM_SERVER_NPY_NPY_PARSER_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/npy/dtype.h"

namespace npystream::npy {

struct ParseLimits {
  size_t max_header_bytes = 64 * 1024;  // whole header: magic to '\n'
  int max_ndim = kMaxNdim;
};

// Bytes in the fixed preamble: magic, version and the widest length field.
inline constexpr size_t kMaxPreambleBytes = 12;

// Given the first bytes of a .npy stream, returns the header's total size
// (magic through the '\n' before the payload), or 0 when `prefix` is too
// short to tell. INVALID_ARGUMENT naming the defect for a bad magic, an
// unknown version or a header larger than `limits.max_header_bytes`.
absl::StatusOr<size_t> PeekHeaderSize(absl::string_view prefix, const ParseLimits& limits = {});

// Parses a complete header (exactly the PeekHeaderSize bytes). The dict must
// hold exactly 'descr', 'fortran_order' and 'shape' as a Python literal.
// INVALID_ARGUMENT naming the defect otherwise.
absl::StatusOr<ArrayMeta> ParseHeader(absl::string_view header, const ParseLimits& limits = {});

}  // namespace npystream::npy

#endif  // NPYSTREAM_SERVER_NPY_NPY_PARSER_H_
