// The plain fetch: beside gRPC's unix:///P listener the daemon listens on
// P.fetch, where a same-host client fetches a tensor's .npy bytes without
// HTTP/2 (measured: gRPC over a Unix socket moves no more than over loopback
// TCP; the socket alone moves 1.5x). One request at a time per connection:
//
//   request:  "NPF1", u32 authorization length, u32 handle length,
//             authorization ("Bearer <token>" or empty), handle
//   response: "NPF1", u32 status code (gRPC's numbering, 0 OK), u32 length L,
//             then L bytes: the error message, or for OK the TensorInfo
//             (protobuf) followed by exactly its npy_bytes bytes of .npy file.
//
// Integers are little-endian. A malformed request gets INVALID_ARGUMENT and
// the connection is closed; an error after the first .npy byte closes it
// (the client sees a short stream). UNAVAILABLE (draining, or over the
// server's connection limit) tells a client to fetch over gRPC instead.
#ifndef NPYSTREAM_PROTO_WIRE_SOCKET_FETCH_H_
#define NPYSTREAM_PROTO_WIRE_SOCKET_FETCH_H_

#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace npystream::wire {

inline constexpr absl::string_view kSocketFetchMagic = "NPF1";
inline constexpr size_t kSocketFetchPrefixBytes = 12;      // request and response prefixes
inline constexpr uint32_t kSocketFetchMaxAuth = 4096;      // authorization bytes
inline constexpr uint32_t kSocketFetchMaxHandle = 4096;    // handle bytes
inline constexpr uint32_t kSocketFetchMaxReply = 1 << 20;  // error message or TensorInfo
inline constexpr absl::string_view kSocketFetchSuffix = ".fetch";

// The plain-fetch socket's path for a gRPC target "unix:///P" (or "unix:P"):
// "P.fetch". Empty for any other target.
std::string SocketFetchPath(absl::string_view grpc_target);

// A whole request.
std::string EncodeSocketFetchRequest(absl::string_view authorization, absl::string_view handle);

struct SocketFetchLengths {
  uint32_t authorization = 0;
  uint32_t handle = 0;
};
// The lengths a request's 12-byte prefix announces. INVALID_ARGUMENT naming
// the defect: a short prefix, a wrong magic, an empty or oversized field.
absl::StatusOr<SocketFetchLengths> DecodeSocketFetchPrefix(absl::string_view prefix);

// A response's 12 bytes: status code and the length that follows.
std::string EncodeSocketFetchReplyPrefix(uint32_t code, uint32_t length);
struct SocketFetchReply {
  uint32_t code = 0;
  uint32_t length = 0;
};
// DATA_LOSS for a short prefix or a length over kSocketFetchMaxReply.
absl::StatusOr<SocketFetchReply> DecodeSocketFetchReplyPrefix(absl::string_view prefix);

// Socket I/O both ends of the plain fetch share.
// The address of the Unix socket at `path`; INVALID_ARGUMENT when the path is
// empty or too long for sockaddr_un.
absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path);
// Sends every byte of [p, p+n) (MSG_NOSIGNAL | `flags`): CANCELLED when the
// peer hung up, UNAVAILABLE when a send timeout (SO_SNDTIMEO) passed or
// another error occurred.
absl::Status SendAll(int fd, const char* p, size_t n, int flags = 0);
// Receives up to `n` bytes into `p`; returns how many arrived before the
// connection ended (or failed).
size_t RecvAll(int fd, char* p, size_t n);

}  // namespace npystream::wire

#endif  // NPYSTREAM_PROTO_WIRE_SOCKET_FETCH_H_
