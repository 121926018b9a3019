// GzipEncoder: a gzip member (RFC 1952) produced piece by piece, so an HTTP
// body is compressed as it is sent, never buffered whole. Also decides from
// an Accept-Encoding header whether the peer takes gzip.
#ifndef NPYSTREAM_SERVER_HTTP_GZIP_ENCODER_H_
#define NPYSTREAM_SERVER_HTTP_GZIP_ENCODER_H_

#include <zlib.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream {

// The deflate level of .npy downloads (gzip) and of WebSocket frames
// (permessage-deflate): float payloads gain little from harder levels, and
// level 1 costs the least CPU per MiB.
inline constexpr int kDeflateLevel = 1;

// True when `accept_encoding` (the header's value) names gzip, x-gzip or *
// with a q-value above 0 (RFC 9110 12.5.3).
bool AcceptsGzip(absl::string_view accept_encoding);

class GzipEncoder {
 public:
  // INTERNAL if zlib cannot start (out of memory).
  static absl::StatusOr<std::unique_ptr<GzipEncoder>> Create(int level = kDeflateLevel);
  ~GzipEncoder();
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  // Compresses `in` and appends what zlib emits to *out (replacing nothing);
  // with `finish`, also the trailer: the member is then complete and the
  // encoder must not be used again. Not thread-safe.
  absl::Status Append(absl::string_view in, bool finish, std::string* out);

  uint64_t bytes_in() const { return z_.total_in; }
  uint64_t bytes_out() const { return z_.total_out; }

 private:
  GzipEncoder() = default;
  z_stream z_{};
  bool finished_ = false;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_GZIP_ENCODER_H_
