#include "proto/wire/socket_fetch.h"

#include <errno.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace npystream::wire {
namespace {

void PutU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

std::string SocketFetchPath(absl::string_view grpc_target) {
  absl::string_view path = grpc_target;
  if (!absl::ConsumePrefix(&path, "unix://") && !absl::ConsumePrefix(&path, "unix:")) return "";
  if (path.empty()) return "";
  return absl::StrCat(path, kSocketFetchSuffix);
}

std::string EncodeSocketFetchRequest(absl::string_view authorization, absl::string_view handle) {
  std::string out(kSocketFetchMagic);
  PutU32(static_cast<uint32_t>(authorization.size()), &out);
  PutU32(static_cast<uint32_t>(handle.size()), &out);
  absl::StrAppend(&out, authorization, handle);
  return out;
}

absl::StatusOr<SocketFetchLengths> DecodeSocketFetchPrefix(absl::string_view prefix) {
  if (prefix.size() < kSocketFetchPrefixBytes) {
    return absl::InvalidArgumentError(absl::StrCat("plain fetch request prefix is ", prefix.size(),
                                                   " bytes, not ", kSocketFetchPrefixBytes));
  }
  if (!absl::StartsWith(prefix, kSocketFetchMagic)) {
    return absl::InvalidArgumentError("plain fetch request does not start with \"NPF1\"");
  }
  SocketFetchLengths lengths;
  lengths.authorization = GetU32(prefix.data() + 4);
  lengths.handle = GetU32(prefix.data() + 8);
  if (lengths.authorization > kSocketFetchMaxAuth) {
    return absl::InvalidArgumentError(absl::StrCat("plain fetch authorization of ",
                                                   lengths.authorization, " bytes is over ",
                                                   kSocketFetchMaxAuth));
  }
  if (lengths.handle == 0) return absl::InvalidArgumentError("plain fetch request has no handle");
  if (lengths.handle > kSocketFetchMaxHandle) {
    return absl::InvalidArgumentError(absl::StrCat("plain fetch handle of ", lengths.handle,
                                                   " bytes is over ", kSocketFetchMaxHandle));
  }
  return lengths;
}

std::string EncodeSocketFetchReplyPrefix(uint32_t code, uint32_t length) {
  std::string out(kSocketFetchMagic);
  PutU32(code, &out);
  PutU32(length, &out);
  return out;
}

absl::StatusOr<SocketFetchReply> DecodeSocketFetchReplyPrefix(absl::string_view prefix) {
  if (prefix.size() < kSocketFetchPrefixBytes || !absl::StartsWith(prefix, kSocketFetchMagic)) {
    return absl::DataLossError("plain fetch reply prefix is short or does not start with NPF1");
  }
  SocketFetchReply reply;
  reply.code = GetU32(prefix.data() + 4);
  reply.length = GetU32(prefix.data() + 8);
  if (reply.length > kSocketFetchMaxReply) {
    return absl::DataLossError(absl::StrCat("plain fetch reply announces ", reply.length,
                                            " bytes, over ", kSocketFetchMaxReply));
  }
  return reply;
}

absl::StatusOr<sockaddr_un> UnixSocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unix socket path '", path, "' is empty or too long"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

absl::Status SendAll(int fd, const char* p, size_t n, int flags) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL | flags);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return absl::UnavailableError("plain fetch peer stopped reading (send timeout)");
    }
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      return absl::CancelledError("plain fetch peer went away");
    }
    if (w <= 0) return absl::UnavailableError(absl::StrCat("plain fetch send: ", strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

size_t RecvAll(int fd, char* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd, p + got, n - got, MSG_WAITALL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace npystream::wire
