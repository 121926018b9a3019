// Device names as clients write them: "", "auto", "cpu", "cuda", "cuda:N".
#ifndef NPYSTREAM_SERVER_STORE_DEVICE_NAME_H_
#define NPYSTREAM_SERVER_STORE_DEVICE_NAME_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream {

// Resolves a requested device to a canonical name ("cpu" or "cuda:N") given
// how many CUDA devices this process can use. "" and "auto" pick "cuda:0"
// when one exists, else "cpu". INVALID_ARGUMENT naming the request when it is
// malformed or names a device this server lacks.
absl::StatusOr<std::string> ResolveDevice(absl::string_view requested,
                                          int cuda_device_count);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_STORE_DEVICE_NAME_H_
