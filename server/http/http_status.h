// The one place absl::Status becomes an HTTP status code on the admin port.
#ifndef NPYSTREAM_SERVER_HTTP_HTTP_STATUS_H_
#define NPYSTREAM_SERVER_HTTP_HTTP_STATUS_H_

#include "absl/status/status.h"

namespace npystream {

// INVALID_ARGUMENT and FAILED_PRECONDITION 400, NOT_FOUND 404,
// RESOURCE_EXHAUSTED 413 (a body too big for --max-put-bytes or the budget),
// OUT_OF_RANGE 416, UNAUTHENTICATED 401, PERMISSION_DENIED 403,
// ALREADY_EXISTS 409, DEADLINE_EXCEEDED 504, UNAVAILABLE 503,
// UNIMPLEMENTED 501, anything else 500. OK is 200.
int HttpStatusCode(const absl::Status& status);

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_HTTP_STATUS_H_
