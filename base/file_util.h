// Whole-file reads: the one place the project turns a path into bytes.
#ifndef NPYSTREAM_BASE_FILE_UTIL_H_
#define NPYSTREAM_BASE_FILE_UTIL_H_

#include <string>

#include "absl/status/statusor.h"

namespace npystream {

// The file's bytes. NOT_FOUND when it does not exist, PERMISSION_DENIED or
// INVALID_ARGUMENT (a folder, a read error) otherwise; the message names the
// path. Thread-safe.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace npystream

#endif  // NPYSTREAM_BASE_FILE_UTIL_H_
