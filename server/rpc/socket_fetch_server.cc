#include "server/rpc/socket_fetch_server.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "npystream/v1/tensors.pb.h"
#include "proto/wire/socket_fetch.h"
#include "server/common/log.h"
#include "server/rpc/tensor_info_proto.h"

namespace npystream::rpc {
namespace {

// Payload bytes asked of the transfer engine at a time: a CPU tensor's view
// is sent in pieces this large (a device backend stops at its slot size).
constexpr size_t kReadBytes = 16 << 20;

// Reads exactly `n` bytes; false on EOF, error or shutdown.
bool ReadFull(int fd, char* p, size_t n) { return wire::RecvAll(fd, p, n) == n; }

absl::Status SendError(int fd, const absl::Status& status) {
  const std::string message(status.message().substr(0, wire::kSocketFetchMaxReply));
  std::string reply = wire::EncodeSocketFetchReplyPrefix(static_cast<uint32_t>(status.code()),
                                                         static_cast<uint32_t>(message.size()));
  reply += message;
  return wire::SendAll(fd, reply.data(), reply.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<SocketFetchServer>> SocketFetchServer::Start(
    const Options& options) {
  if (options.store == nullptr || options.transfer == nullptr || options.gate == nullptr) {
    return absl::InvalidArgumentError("SocketFetchServer needs a store, a transfer and a gate");
  }
  absl::StatusOr<sockaddr_un> addr = wire::UnixSocketAddress(options.path);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<SocketFetchServer> server(new SocketFetchServer(options));
  // Replace a stale socket (a daemon that died), never another kind of file.
  struct stat st;
  if (::lstat(options.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(options.path.c_str());
  }
  server->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  server->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (server->listen_fd_ < 0 || server->wake_fd_ < 0 ||
      ::bind(server->listen_fd_, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      ::listen(server->listen_fd_, 64) != 0) {
    const std::string why = strerror(errno);
    server->stopped_ = true;  // nothing to join; the destructor closes the fds
    if (server->listen_fd_ >= 0) ::close(server->listen_fd_);
    if (server->wake_fd_ >= 0) ::close(server->wake_fd_);
    server->listen_fd_ = server->wake_fd_ = -1;
    return absl::UnavailableError(
        absl::StrCat("could not listen for plain fetch on ", options.path, ": ", why));
  }
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

SocketFetchServer::~SocketFetchServer() { Stop(); }

void SocketFetchServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (Connection& c : connections_) {
      if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
    }
  }
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof(one)) < 0) {
    // An eventfd write fails only on overflow; the loop is being woken anyway.
  }
  acceptor_.join();
  std::list<Connection> ended;
  {
    absl::MutexLock lock(&mu_);
    ended.swap(connections_);
  }
  for (Connection& c : ended) c.thread.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
  ::unlink(options_.path.c_str());
}

int SocketFetchServer::ReapLocked() {
  int live = 0;
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->done) {
      it->thread.join();  // its last step was marking itself done
      it = connections_.erase(it);
    } else {
      ++live;
      ++it;
    }
  }
  return live;
}

void SocketFetchServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (options_.send_timeout > absl::ZeroDuration()) {
      const timeval tv = absl::ToTimeval(options_.send_timeout);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      ::close(fd);
      break;
    }
    if (ReapLocked() >= options_.max_connections) {
      // UNAVAILABLE: the clients then fetch over gRPC instead.
      SendError(fd, absl::UnavailableError(absl::StrCat(
                        "plain fetch has ", options_.max_connections,
                        " connections already (the most it serves); use gRPC or retry")))
          .IgnoreError();
      ::close(fd);
      continue;
    }
    Connection& c = connections_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c] { Serve(&c); });
  }
}

void SocketFetchServer::Serve(Connection* connection) {
  const int fd = connection->fd;  // only this thread closes it
  while (true) {
    char prefix[wire::kSocketFetchPrefixBytes];
    if (!ReadFull(fd, prefix, sizeof(prefix))) break;  // the client hung up
    auto lengths = wire::DecodeSocketFetchPrefix(absl::string_view(prefix, sizeof(prefix)));
    if (!lengths.ok()) {
      // Not this protocol (or garbage): say why once, then hang up, since
      // where the next request starts is unknown.
      Log(LogLevel::kWarning, "plain_fetch_bad_request", {{"error", lengths.status().message()}});
      if (RpcMetrics* metrics = options_.gate->metrics()) {
        metrics->CallDone("PlainFetch", static_cast<int>(lengths.status().code()), 0);
      }
      SendError(fd, lengths.status()).IgnoreError();
      break;
    }
    std::string body(lengths->authorization + lengths->handle, '\0');
    if (!ReadFull(fd, body.data(), body.size())) break;
    std::optional<absl::string_view> authorization;
    if (lengths->authorization > 0) {
      authorization = absl::string_view(body.data(), lengths->authorization);
    }
    const std::string handle = body.substr(lengths->authorization);

    auto ticket = options_.gate->AdmitPlain(authorization, "PlainFetch");
    if (!ticket.ok()) {
      if (!SendError(fd, ticket.status()).ok()) break;
      continue;
    }
    (*ticket)->set_handle(handle);
    if (options_.peers != nullptr && !options_.peers->OwnerElsewhere(handle).empty()) {
      const absl::Status relayed =
          absl::UnavailableError("another replica's handle: fetch it over gRPC, which relays it");
      (*ticket)->Done(static_cast<int>(relayed.code()), relayed.message());
      if (!SendError(fd, relayed).ok()) break;
      continue;
    }
    auto tensor = options_.store->Acquire(handle);
    absl::StatusOr<std::unique_ptr<PayloadReader>> reader =
        tensor.ok() ? options_.transfer->OpenReader(*tensor)
                    : absl::StatusOr<std::unique_ptr<PayloadReader>>(tensor.status());
    if (!reader.ok()) {
      (*ticket)->Done(static_cast<int>(reader.status().code()), reader.status().message());
      if (!SendError(fd, reader.status()).ok()) break;
      continue;
    }
    RpcMetrics* metrics = options_.gate->metrics();
    if (metrics != nullptr) metrics->FetchStarted();
    // Prefix, TensorInfo and .npy header in one send; then the payload as
    // the transfer engine hands it out, straight from its memory.
    npystream::v1::TensorInfo info;
    ToProto((*tensor)->info(), &info);
    const std::string info_bytes = info.SerializeAsString();
    std::string head =
        wire::EncodeSocketFetchReplyPrefix(0, static_cast<uint32_t>(info_bytes.size()));
    head += info_bytes;
    head += (*tensor)->npy_header();
    absl::Status sent = wire::SendAll(fd, head.data(), head.size(), MSG_MORE);
    (*ticket)->AddSent((*tensor)->npy_header().size());
    const uint64_t nbytes = (*tensor)->info().nbytes;
    for (uint64_t at = 0; sent.ok() && at < nbytes;) {
      absl::StatusOr<HostChunk> chunk;
      absl::Notification ready;
      (*reader)->Read(at, static_cast<size_t>(std::min<uint64_t>(kReadBytes, nbytes - at)),
                      [&](absl::StatusOr<HostChunk> c) {
                        chunk = std::move(c);
                        ready.Notify();
                      });
      ready.WaitForNotification();
      if (!chunk.ok()) {
        sent = chunk.status();
        break;
      }
      sent = wire::SendAll(fd, chunk->data, chunk->size);
      at += chunk->size;
      (*ticket)->AddSent(chunk->size);
    }
    reader->reset();  // before the pin on the tensor goes
    if (metrics != nullptr) metrics->FetchEnded();
    (*ticket)->Done(static_cast<int>(sent.code()), sent.message());
    // After the first .npy byte an error can only be told by hanging up.
    if (!sent.ok()) break;
  }
  absl::MutexLock lock(&mu_);
  ::close(fd);
  connection->fd = -1;
  connection->done = true;
}

}  // namespace npystream::rpc
