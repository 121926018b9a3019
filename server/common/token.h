// Bearer-token checks shared by the gRPC and HTTP edges.
#ifndef NPYSTREAM_SERVER_COMMON_TOKEN_H_
#define NPYSTREAM_SERVER_COMMON_TOKEN_H_

#include "absl/strings/string_view.h"

namespace npystream {

// True when `header` (an "authorization" value) is exactly "Bearer <token>".
// Takes the same time for every header of a given length, whatever matches.
bool BearerTokenMatches(absl::string_view header, absl::string_view token);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_COMMON_TOKEN_H_
