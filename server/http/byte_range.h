// HTTP Range requests (RFC 9110, "bytes=" unit) over a body of known size.
#ifndef NPYSTREAM_SERVER_HTTP_BYTE_RANGE_H_
#define NPYSTREAM_SERVER_HTTP_BYTE_RANGE_H_

#include <cstdint>
#include <string>

namespace npystream {

// Parses a single "bytes=" range against `total` bytes into [first, last].
// Returns false when unsatisfiable or malformed (HTTP 416); sets *whole for
// multi-range or absent ranges (serve everything, 200).
bool ParseByteRange(const std::string& header, uint64_t total, uint64_t* first, uint64_t* last,
                    bool* whole);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_BYTE_RANGE_H_
