#include "client/cpp/npystream_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "grpcpp/generic/generic_stub.h"
#include "proto/wire/channel_args.h"
#include "proto/wire/socket_fetch.h"
#include "proto/wire/wire_format.h"

namespace npystream {
namespace {

constexpr size_t kPutChunk = 1 << 20;
constexpr uint64_t kProgressEvery = 4 << 20;
constexpr size_t kMaxPeers = 64;  // replicas a routing client keeps a connection to

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// What gRPC reports when the connection it kept turned out dead (the daemon
// restarted) before the call was answered; mirrored in the Python client's
// _errors.py. Not "Connection refused" or "failed to connect" (nothing
// listens: fail at once), never a daemon's own UNAVAILABLE ("draining").
bool DroppedBeforeAnswer(const absl::Status& s) {
  if (!absl::IsUnavailable(s)) return false;
  for (absl::string_view lost :
       {"Broken pipe", "Connection reset", "Socket closed", "Stream removed", "GOAWAY"}) {
    if (absl::StrContains(s.message(), lost)) return true;
  }
  return false;
}

// Runs an idempotent unary call (a fresh context each time) and, when it was
// lost with a dead connection, once more on the reconnected channel.
template <typename Call>
absl::Status OnceMoreIfDropped(const Call& call) {
  absl::Status s = FromGrpc(call());
  if (DroppedBeforeAnswer(s)) s = FromGrpc(call());
  return s;
}

// The PutHeader of a Put or an Allocate.
void SetHeader(const PutOptions& options, npystream::v1::PutHeader* header) {
  header->set_name(options.name);
  header->set_device(options.device);
  header->set_ttl_seconds(options.ttl_seconds);
}

// Waits for `tag` on a completion queue used by one call at a time.
bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  if (!cq->Next(&got, &ok)) return false;
  return got == tag && ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  grpc::ChannelArguments args = wire::StreamingChannelArguments();
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (!options.tls_root_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_pem;
    creds = grpc::SslCredentials(ssl);
  }
  auto channel = grpc::CreateCustomChannel(options.target, creds, args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot make a channel to ", options.target));
  }
  return std::unique_ptr<Client>(new Client(options, std::move(channel)));
}

Client::Client(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
    : options_(options),
      plain_path_(options.plain_fetch ? wire::SocketFetchPath(options.target) : ""),
      channel_(std::move(channel)),
      stub_(npystream::v1::Tensors::NewStub(channel_)) {}

Client::~Client() {
  absl::MutexLock lock(&plain_mu_);
  for (int fd : plain_idle_) close(fd);
}

int Client::PlainConnection(bool fresh) {
  {
    absl::MutexLock lock(&plain_mu_);
    if (plain_absent_) return -1;
    if (!fresh && !plain_idle_.empty()) {
      const int fd = plain_idle_.back();
      plain_idle_.pop_back();
      return fd;
    }
  }
  absl::StatusOr<sockaddr_un> addr = wire::UnixSocketAddress(plain_path_);
  const int fd = addr.ok() ? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
  if (fd >= 0 && connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0) {
    return fd;
  }
  if (fd >= 0) close(fd);
  // No plain fetch socket (an older daemon, another host's path): gRPC from
  // now on.
  absl::MutexLock lock(&plain_mu_);
  plain_absent_ = true;
  return -1;
}

std::optional<absl::StatusOr<npystream::v1::TensorInfo>> Client::PlainFetch(
    const std::string& handle, const PlaceFn& place,
    const std::function<void(uint64_t, uint64_t)>& progress, const std::atomic<bool>* stop) {
  if (plain_path_.empty()) return std::nullopt;
  const std::string request = wire::EncodeSocketFetchRequest(Authorization(), handle);
  // A kept connection may have been closed by a daemon that restarted:
  // then one retry on a new one.
  int fd = -1;
  char prefix[wire::kSocketFetchPrefixBytes];
  for (bool fresh : {false, true}) {
    fd = PlainConnection(fresh);
    if (fd < 0) return std::nullopt;
    if (wire::SendAll(fd, request.data(), request.size()).ok() &&
        wire::RecvAll(fd, prefix, sizeof(prefix)) == sizeof(prefix)) {
      break;
    }
    close(fd);
    fd = -1;
    if (fresh) return std::nullopt;  // it closed before answering: gRPC may still serve
  }
  auto fail = [&](absl::Status status) -> absl::StatusOr<npystream::v1::TensorInfo> {
    close(fd);
    return status;
  };
  auto reply = wire::DecodeSocketFetchReplyPrefix(absl::string_view(prefix, sizeof(prefix)));
  if (!reply.ok()) return fail(reply.status());
  std::string body(reply->length, '\0');
  if (wire::RecvAll(fd, body.data(), body.size()) != body.size()) {
    return fail(absl::UnavailableError("plain fetch reply ended early"));
  }
  if (reply->code == static_cast<uint32_t>(absl::StatusCode::kUnavailable)) {
    close(fd);  // over its connection limit, or draining: gRPC answers for itself
    return std::nullopt;
  }
  if (reply->code != 0) {
    {
      absl::MutexLock lock(&plain_mu_);
      plain_idle_.push_back(fd);  // an answered error leaves the connection usable
    }
    return absl::Status(static_cast<absl::StatusCode>(reply->code), body);
  }
  npystream::v1::TensorInfo info;
  if (!info.ParseFromString(body) || info.npy_bytes() < info.nbytes() ||
      info.npy_bytes() - info.nbytes() > wire::kSocketFetchMaxReply) {
    return fail(absl::DataLossError("plain fetch reply has a malformed TensorInfo"));
  }
  std::string header(info.npy_bytes() - info.nbytes(), '\0');
  if (wire::RecvAll(fd, header.data(), header.size()) != header.size()) {
    return fail(absl::UnavailableError("plain fetch ended inside the .npy header"));
  }
  absl::StatusOr<char*> dst = place(info, header);
  if (!dst.ok()) return fail(dst.status());  // the rest is never read: hang up
  uint64_t done = 0;
  while (done < info.nbytes()) {
    if (stop != nullptr && stop->load()) {
      return fail(absl::CancelledError(absl::StrCat("fetch of '", handle, "' stopped")));
    }
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(kProgressEvery, info.nbytes() - done));
    const size_t got = wire::RecvAll(fd, *dst + done, want);
    done += got;
    if (got != want) {
      return fail(absl::UnavailableError(absl::StrCat("plain fetch of '", handle, "' ended after ",
                                                      header.size() + done, " of ",
                                                      info.npy_bytes(), " bytes")));
    }
    if (progress) progress(header.size() + done, info.npy_bytes());
  }
  if (progress && info.nbytes() == 0) progress(info.npy_bytes(), info.npy_bytes());
  absl::MutexLock lock(&plain_mu_);
  plain_idle_.push_back(fd);
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::FetchInto(
    const std::string& handle, const PlaceFn& place,
    const std::function<void(uint64_t, uint64_t)>& progress, uint32_t chunk_bytes,
    const FetchView& view, const std::atomic<bool>* stop) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->FetchInto(handle, place, progress, chunk_bytes, view, stop);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  bool answered = false;
  auto fetched = FetchIntoHere(
      handle,
      [&](const npystream::v1::TensorInfo& info, absl::string_view header) {
        answered = true;
        return place(info, header);
      },
      progress, chunk_bytes, view, stop);
  if (answered || !DroppedBeforeAnswer(fetched.status())) return fetched;
  return FetchIntoHere(handle, place, progress, chunk_bytes, view, stop);
}

absl::StatusOr<npystream::v1::TensorInfo> Client::FetchIntoHere(
    const std::string& handle, const PlaceFn& place,
    const std::function<void(uint64_t, uint64_t)>& progress, uint32_t chunk_bytes,
    const FetchView& view, const std::atomic<bool>* stop) {
  if (view.whole()) {
    if (auto plain = PlainFetch(handle, place, progress, stop)) return *std::move(plain);
  }
  std::string header;
  uint64_t header_len = 0;
  uint64_t total = 0;
  uint64_t pos = 0;
  uint64_t reported = 0;
  char* dst = nullptr;
  bool placed = false;
  absl::Status stopped;  // place's error, or too many bytes
  // Set when `stopped` or the caller's stop is: the rest is not received.
  std::atomic<bool> halt{false};
  npystream::v1::TensorInfo first;
  auto info = FetchHere(
      handle,
      [&](const npystream::v1::TensorInfo& i) {
        first = i;
        total = i.npy_bytes();
        header_len = i.npy_bytes() >= i.nbytes() ? i.npy_bytes() - i.nbytes() : 0;
      },
      [&](const char* p, size_t n) {
        if (!stopped.ok() || (stop != nullptr && stop->load())) {
          halt.store(true);
          return;
        }
        if (pos < header_len) {
          const size_t take = static_cast<size_t>(std::min<uint64_t>(n, header_len - pos));
          header.append(p, take);
          p += take;
          n -= take;
          pos += take;
          if (pos == header_len) {
            absl::StatusOr<char*> at = place(first, header);
            placed = true;
            if (!at.ok()) {
              stopped = at.status();
              halt.store(true);
              return;
            }
            dst = *at;
          }
        }
        if (n == 0) return;
        if (!placed || pos + n > total) {
          stopped = absl::DataLossError("the server sent more bytes than the tensor holds");
          halt.store(true);
          return;
        }
        std::memcpy(dst + (pos - header_len), p, n);
        pos += n;
        if (progress && (pos - reported >= kProgressEvery || pos == total)) {
          reported = pos;
          progress(pos, total);
        }
      },
      chunk_bytes, view, &halt);
  if (!stopped.ok()) return stopped;
  if (!info.ok()) return info.status();
  if (!placed) return absl::DataLossError("the fetch ended inside the .npy header");
  return info;
}

std::string Client::Authorization() const {
  return options_.token.empty() ? "" : "Bearer " + options_.token;
}

void Client::Prepare(grpc::ClientContext* context) const {
  if (!options_.token.empty()) context->AddMetadata("authorization", Authorization());
}

absl::StatusOr<npystream::v1::TensorInfo> Client::Fetch(
    const std::string& handle, const std::function<void(const npystream::v1::TensorInfo&)>& on_info,
    const std::function<void(const char*, size_t)>& sink, uint32_t chunk_bytes,
    const FetchView& view, const std::atomic<bool>* stop) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->Fetch(handle, on_info, sink, chunk_bytes, view, stop);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  bool answered = false;
  auto fetched = FetchHere(
      handle,
      [&](const npystream::v1::TensorInfo& info) {
        answered = true;
        if (on_info) on_info(info);
      },
      sink, chunk_bytes, view, stop);
  if (answered || !DroppedBeforeAnswer(fetched.status())) return fetched;
  return FetchHere(handle, on_info, sink, chunk_bytes, view, stop);
}

absl::StatusOr<npystream::v1::TensorInfo> Client::FetchHere(
    const std::string& handle, const std::function<void(const npystream::v1::TensorInfo&)>& on_info,
    const std::function<void(const char*, size_t)>& sink, uint32_t chunk_bytes,
    const FetchView& view, const std::atomic<bool>* stop) {
  npystream::v1::FetchRequest request;
  request.set_handle(handle);
  request.set_chunk_bytes(chunk_bytes);
  if (!view.whole()) {
    request.mutable_view()->set_index(view.index);
    request.mutable_view()->set_dtype(view.dtype);
    request.mutable_view()->set_pool(view.pool);
  }
  grpc::ClientContext context;
  Prepare(&context);
  grpc::CompletionQueue cq;
  grpc::GenericStub generic(channel_);
  auto call = generic.PrepareCall(&context, "/npystream.v1.Tensors/Fetch", &cq);
  int tag = 0;
  call->StartCall(&tag);
  bool ok = Await(&cq, &tag);
  if (ok) {
    grpc::Slice slice(request.SerializeAsString());
    grpc::ByteBuffer out(&slice, 1);
    call->WriteLast(out, grpc::WriteOptions(), &tag);
    ok = Await(&cq, &tag);
  }
  npystream::v1::TensorInfo info;
  bool have_info = false;
  uint64_t received = 0;
  absl::Status local;
  grpc::ByteBuffer in;
  while (ok) {
    call->Read(&in, &tag);
    if (!Await(&cq, &tag)) break;
    wire::MessageReader reader(in);
    wire::MessageReader::Field field;
    while (reader.Next(&field)) {
      if (field.number == v1::FetchResponse::kInfoFieldNumber &&
          field.type == wire::kLengthDelimited) {
        std::string bytes;
        reader.ReadString(field.value, &bytes);
        have_info = info.ParseFromString(bytes);
        if (have_info && on_info) on_info(info);
      } else if (field.number == v1::FetchResponse::kDataFieldNumber &&
                 field.type == wire::kLengthDelimited) {
        reader.ReadBytes(field.value, [&](const char* p, size_t n) {
          if (local.ok()) sink(p, n);
          received += n;
        });
      } else {
        reader.Skip(field);
      }
    }
    if (reader.error() && local.ok()) local = absl::DataLossError("malformed FetchResponse");
    if (!have_info && local.ok()) local = absl::DataLossError("FetchResponse without info");
    if (stop != nullptr && stop->load()) {
      context.TryCancel();  // the daemon drops the stream (and its pin) now
      if (local.ok()) {
        local = absl::CancelledError(absl::StrCat("fetch of '", handle, "' stopped"));
      }
      break;
    }
  }
  grpc::Status status;
  call->Finish(&status, &tag);
  Await(&cq, &tag);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!local.ok() && absl::IsCancelled(local)) return local;  // stopped: our cancel's status
  if (!status.ok()) return FromGrpc(status);
  if (!local.ok()) return local;
  if (!have_info || received != info.npy_bytes()) {
    return absl::DataLossError(absl::StrCat("fetch of '", handle, "' ended after ", received,
                                            " of ", info.npy_bytes(), " bytes"));
  }
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::FetchToBuffer(const std::string& handle,
                                                                std::vector<char>* buffer,
                                                                const FetchView& view) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->FetchToBuffer(handle, buffer, view);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  if (view.whole() && SharedFolder().ok()) {
    absl::StatusOr<npystream::v1::MapResponse> response = MapRequest(handle);
    if (!response.ok()) return response.status();  // the server's answer
    // Read, not copied out of a mapping (a page fault per 4 KiB page). A
    // file this process cannot open (permissions) falls back to the stream.
    const int fd = open(response->path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      buffer->resize(response->npy_bytes());
      uint64_t done = 0;
      while (done < buffer->size()) {
        const ssize_t n =
            pread(fd, buffer->data() + done, buffer->size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<uint64_t>(n);
      }
      close(fd);
      if (done != buffer->size()) {
        return absl::DataLossError(absl::StrCat("reading ", response->path(), " ended after ", done,
                                                " of ", buffer->size(), " bytes"));
      }
      return response->info();
    }
  }
  return FetchIntoHere(
      handle,
      [&](const npystream::v1::TensorInfo& info,
          absl::string_view npy_header) -> absl::StatusOr<char*> {
        buffer->resize(info.npy_bytes());
        std::memcpy(buffer->data(), npy_header.data(), npy_header.size());
        return buffer->data() + npy_header.size();
      },
      nullptr, 0, view, nullptr);
}

absl::StatusOr<npystream::v1::TensorInfo> Client::FetchToFile(const std::string& handle,
                                                              const std::string& path) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->FetchToFile(handle, path);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot open ", path));
  bool write_ok = true;
  auto info = FetchHere(
      handle, nullptr,
      [&](const char* p, size_t n) { write_ok = write_ok && std::fwrite(p, 1, n, f) == n; }, 0, {},
      nullptr);
  write_ok = (std::fclose(f) == 0) && write_ok;
  if (!info.ok()) return info.status();
  if (!write_ok) return absl::InternalError(absl::StrCat("write to ", path, " failed"));
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::Put(
    const PutOptions& options, const std::function<bool(std::string* chunk)>& next_chunk) {
  grpc::ClientContext context;
  Prepare(&context);
  npystream::v1::TensorInfo info;
  auto writer = stub_->Put(&context, &info);
  npystream::v1::PutRequest request;
  SetHeader(options, request.mutable_header());
  bool ok = writer->Write(request);
  while (ok && next_chunk(request.mutable_data())) {
    ok = writer->Write(request);
  }
  writer->WritesDone();
  absl::Status status = FromGrpc(writer->Finish());
  if (!status.ok()) return status;
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::PutFile(const std::string& path,
                                                          const PutOptions& options) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  auto info = Put(options, [f](std::string* chunk) {
    chunk->resize(kPutChunk);
    const size_t n = std::fread(chunk->data(), 1, kPutChunk, f);
    chunk->resize(n);
    return n > 0;
  });
  std::fclose(f);
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::PutBytes(const std::string& npy,
                                                           const PutOptions& options) {
  return PutParts(npy, absl::string_view(), options);
}

absl::StatusOr<npystream::v1::TensorInfo> Client::PutParts(
    absl::string_view npy_header, absl::string_view payload, const PutOptions& options,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  const absl::string_view parts[] = {npy_header, payload};
  const uint64_t total = npy_header.size() + payload.size();
  uint64_t sent = 0;
  size_t part = 0;
  size_t pos = 0;
  return Put(options, [&](std::string* chunk) {
    // Called for the next request once the previous one was written.
    if (progress && sent > 0) progress(sent, total);
    while (part < 2 && pos >= parts[part].size()) {
      ++part;
      pos = 0;
    }
    if (part == 2) return false;
    const absl::string_view piece = parts[part].substr(pos, kPutChunk);
    chunk->assign(piece.data(), piece.size());
    pos += piece.size();
    sent += piece.size();
    return true;
  });
}

MappedTensor::~MappedTensor() {
  if (base_ != nullptr) munmap(base_, size_);
}

absl::Status Client::SharedFolder() {
  absl::MutexLock lock(&shm_mu_);
  if (shm_checked_) return shm_status_;
  shm_checked_ = true;
  if (!options_.shm) {
    shm_status_ = absl::FailedPreconditionError("ClientOptions::shm is off");
    return shm_status_;
  }
  npystream::v1::ShmResponse response;
  shm_status_ = OnceMoreIfDropped([&] {
    grpc::ClientContext context;
    Prepare(&context);
    return stub_->Shm(&context, npystream::v1::ShmRequest(), &response);
  });
  if (!shm_status_.ok()) return shm_status_;
  if (response.marker_path().empty()) {
    shm_status_ = absl::FailedPreconditionError("the daemon has no --shm-dir");
    return shm_status_;
  }
  struct stat st {};
  if (lstat(response.marker_path().c_str(), &st) != 0 ||
      static_cast<uint64_t>(st.st_dev) != response.marker_device() ||
      static_cast<uint64_t>(st.st_ino) != response.marker_inode()) {
    shm_status_ = absl::FailedPreconditionError(
        absl::StrCat("the daemon's --shm-dir ", response.dir(), " is not visible to this process"));
  }
  return shm_status_;
}

absl::StatusOr<std::unique_ptr<MappedTensor>> Client::MapFile(
    const npystream::v1::MapResponse& response, bool writable) {
  std::unique_ptr<MappedTensor> mapped(new MappedTensor());
  mapped->info_ = response.info();
  mapped->size_ = response.npy_bytes();
  mapped->data_offset_ = response.data_offset();
  mapped->writable_ = writable;
  const int fd =
      open(response.path().c_str(), (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", response.path(), ": ", std::strerror(errno)));
  }
  void* base = mmap(nullptr, mapped->size_, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                    MAP_SHARED, fd, 0);
  close(fd);
  if (base == MAP_FAILED) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot map ", response.path(), ": ", std::strerror(errno)));
  }
  mapped->base_ = static_cast<char*>(base);
  return mapped;
}

absl::StatusOr<npystream::v1::MapResponse> Client::MapRequest(const std::string& handle) {
  npystream::v1::MapRequest request;
  request.set_handle(handle);
  npystream::v1::MapResponse response;
  if (absl::Status s = OnceMoreIfDropped([&] {
        grpc::ClientContext context;
        Prepare(&context);
        return stub_->Map(&context, request, &response);
      });
      !s.ok()) {
    return s;
  }
  return response;
}

absl::StatusOr<std::unique_ptr<MappedTensor>> Client::Map(const std::string& handle) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->Map(handle);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  if (absl::Status s = SharedFolder(); !s.ok()) return s;
  absl::StatusOr<npystream::v1::MapResponse> response = MapRequest(handle);
  if (!response.ok()) return response.status();
  return MapFile(*response, /*writable=*/false);
}

absl::StatusOr<std::unique_ptr<MappedTensor>> Client::Allocate(const std::string& descr,
                                                               const std::vector<int64_t>& shape,
                                                               const PutOptions& options) {
  if (absl::Status s = SharedFolder(); !s.ok()) return s;
  grpc::ClientContext context;
  Prepare(&context);
  npystream::v1::AllocateRequest request;
  SetHeader(options, request.mutable_header());
  request.set_dtype(descr);
  for (int64_t d : shape) request.add_shape(d);
  npystream::v1::MapResponse response;
  if (absl::Status s = FromGrpc(stub_->Allocate(&context, request, &response)); !s.ok()) return s;
  auto mapped = MapFile(response, /*writable=*/true);
  if (!mapped.ok()) (void)Release(response.info().handle());  // its budget back now
  return mapped;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::Commit(std::unique_ptr<MappedTensor> tensor) {
  const std::string handle = tensor->info().handle();
  tensor.reset();  // unmapped first: nothing writes after the commit
  grpc::ClientContext context;
  Prepare(&context);
  npystream::v1::TensorRef ref;
  ref.set_handle(handle);
  npystream::v1::TensorInfo info;
  if (absl::Status s = FromGrpc(stub_->Commit(&context, ref, &info)); !s.ok()) return s;
  return info;
}

absl::StatusOr<npystream::v1::TensorInfo> Client::Stat(const std::string& handle) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    auto routed = peer->Stat(handle);
    if (!absl::IsUnavailable(routed.status())) return routed;
    Unreachable(handle);
  }
  npystream::v1::TensorRef ref;
  ref.set_handle(handle);
  npystream::v1::TensorInfo info;
  absl::Status s = OnceMoreIfDropped([&] {
    grpc::ClientContext context;
    Prepare(&context);
    return stub_->Stat(&context, ref, &info);
  });
  if (!s.ok()) return s;
  return info;
}

absl::StatusOr<std::vector<npystream::v1::TensorInfo>> Client::List() {
  npystream::v1::ListResponse response;
  absl::Status s = OnceMoreIfDropped([&] {
    grpc::ClientContext context;
    Prepare(&context);
    return stub_->List(&context, {}, &response);
  });
  if (!s.ok()) return s;
  return std::vector<npystream::v1::TensorInfo>(response.tensors().begin(),
                                                response.tensors().end());
}

absl::Status Client::Release(const std::string& handle) {
  if (std::shared_ptr<Client> peer = Owner(handle)) {
    absl::Status routed = peer->Release(handle);
    if (!absl::IsUnavailable(routed)) return routed;
    Unreachable(handle);
  }
  grpc::ClientContext context;
  Prepare(&context);
  npystream::v1::TensorRef ref;
  ref.set_handle(handle);
  npystream::v1::ReleaseResponse response;
  return FromGrpc(stub_->Release(&context, ref, &response));
}

std::shared_ptr<Client> Client::Owner(const std::string& handle) {
  if (!options_.route) return nullptr;
  const size_t tilde = handle.rfind('~');
  if (tilde == std::string::npos || tilde + 1 == handle.size()) return nullptr;
  const std::string replica = handle.substr(tilde + 1);
  bool known = false;
  {
    absl::MutexLock lock(&route_mu_);
    known = topology_known_;
  }
  if (!known) {
    npystream::v1::TopologyResponse answer;
    const absl::Status s = OnceMoreIfDropped([&] {
      grpc::ClientContext context;
      Prepare(&context);
      return stub_->Topology(&context, npystream::v1::TopologyRequest(), &answer);
    });
    if (absl::IsUnavailable(s)) return nullptr;  // ask again next time
    absl::MutexLock lock(&route_mu_);
    topology_known_ = true;  // an older daemon (UNIMPLEMENTED): no replicas
    if (s.ok()) {
      replica_ = answer.replica();
      peer_template_ = answer.peer_address();
    }
  }
  std::string address;
  {
    absl::MutexLock lock(&route_mu_);
    if (peer_template_.empty() || replica == replica_) return nullptr;
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (peers_[i].first == replica) {
        std::rotate(peers_.begin() + static_cast<std::ptrdiff_t>(i),
                    peers_.begin() + static_cast<std::ptrdiff_t>(i) + 1, peers_.end());
        return peers_.back().second;
      }
    }
    address = absl::StrReplaceAll(peer_template_, {{"{replica}", replica}});
  }
  ClientOptions options = options_;
  options.target = address;
  options.route = false;
  absl::StatusOr<std::unique_ptr<Client>> made = Connect(options);
  if (!made.ok()) return nullptr;
  std::shared_ptr<Client> peer = std::move(*made);
  std::shared_ptr<Client> evicted;  // destroyed outside the lock
  absl::MutexLock lock(&route_mu_);
  peers_.emplace_back(replica, peer);
  if (peers_.size() > kMaxPeers) {
    evicted = std::move(peers_.front().second);
    peers_.erase(peers_.begin());
  }
  return peer;
}

void Client::Unreachable(const std::string& handle) {
  const std::string replica = handle.substr(handle.rfind('~') + 1);
  std::shared_ptr<Client> dropped;  // destroyed outside the lock
  absl::MutexLock lock(&route_mu_);
  for (auto it = peers_.begin(); it != peers_.end(); ++it) {
    if (it->first == replica) {
      dropped = std::move(it->second);
      peers_.erase(it);
      return;
    }
  }
}

}  // namespace npystream
