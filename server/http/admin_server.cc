#include "server/http/admin_server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/log.h"
#include "server/common/token.h"
#include "server/http/byte_range.h"
#include "server/http/routes.h"

namespace npystream {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kBodyPiece = 1 << 20;
constexpr auto kIoTimeout = std::chrono::seconds(60);
constexpr size_t kMaxHeaderBytes = 8 * 1024;  // Beast's default request header limit

nlohmann::json InfoJson(const TensorInfo& info) {
  return {{"handle", info.handle},
          {"name", info.name},
          {"dtype", npy::Descr(info.meta.dtype)},
          {"shape", info.meta.shape},
          {"nbytes", info.nbytes},
          {"npy_bytes", info.npy_bytes},
          {"device", info.device},
          {"created_unix_ms", info.created_unix_ms},
          {"expires_unix_ms", info.expires_unix_ms}};
}

}  // namespace

struct AdminServer::Impl {
  explicit Impl(const Options& o) : options(o), acceptor(ioc) {}
  void Accept();

  Options options;
  net::io_context ioc;
  std::unique_ptr<ssl::context> tls;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};
};

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  template <class... Args>
  Session(AdminServer::Impl* server, Args&&... args)
      : server_(server), stream_(std::forward<Args>(args)...) {}

  void Run() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->Read();
                              });
    } else {
      Read();
    }
  }

 private:
  void Read() {
    req_ = {};
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    http::async_read(stream_, buffer_, req_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::end_of_stream) return self->Close();
                       if (!ec) return self->Handle();
                       self->RefuseUnparsable(ec);
                     });
  }

  // A request Beast could not parse gets a status naming why, then the
  // connection closes; I/O errors and timeouts just close it.
  void RefuseUnparsable(const beast::error_code& ec) {
    if (ec.category() != http::make_error_code(http::error::header_limit).category()) return;
    req_.version(11);
    req_.keep_alive(false);
    if (ec == http::error::header_limit) {
      return Error(http::status::request_header_fields_too_large,
                   absl::StrCat("request headers exceed ", kMaxHeaderBytes, " bytes"));
    }
    if (ec == http::error::body_limit) {
      return Error(http::status::payload_too_large, "request body too large");
    }
    Error(http::status::bad_request, absl::StrCat("malformed HTTP request: ", ec.message()));
  }

  void Close() {
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  void Reply(http::status status, std::string body, const char* type = "application/json") {
    auto res = std::make_shared<http::response<http::string_body>>(status, req_.version());
    res->set(http::field::server, "npystreamd");
    res->set(http::field::content_type, type);
    if (status == http::status::unauthorized) res->set(http::field::www_authenticate, "Bearer");
    res->keep_alive(req_.keep_alive());
    res->body() = std::move(body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec) return;
                        if (res->need_eof()) return self->Close();
                        self->Read();
                      });
  }

  void Error(http::status status, const std::string& message) {
    Reply(status, nlohmann::json{{"error", message}}.dump() + "\n");
  }

  bool Authorized() {
    const std::string& token = server_->options.token;
    if (token.empty()) return true;
    auto it = req_.find(http::field::authorization);
    const std::string value = it == req_.end() ? std::string() : std::string(it->value());
    return BearerTokenMatches(value, token);
  }

  void Handle() {
    const auto& o = server_->options;
    const beast::string_view method = req_.method_string(), target = req_.target();
    const Route route = MatchRoute(absl::string_view(method.data(), method.size()),
                                   absl::string_view(target.data(), target.size()));
    if (route.needs_token && !Authorized()) {
      return Error(http::status::unauthorized, "missing or wrong bearer token");
    }
    switch (route.kind) {
      case Route::kMetrics:
        return Reply(http::status::ok, o.scrape ? o.scrape() : std::string(),
                     "text/plain; version=0.0.4");
      case Route::kHealthz:
        return Reply(http::status::ok, "{\"status\":\"ok\"}\n");
      case Route::kReadyz: {
        const std::string reason = o.not_ready_reason ? o.not_ready_reason() : "";
        if (reason.empty()) return Reply(http::status::ok, "{\"ready\":true}\n");
        return Reply(http::status::service_unavailable,
                     nlohmann::json{{"ready", false}, {"reason", reason}}.dump() + "\n");
      }
      case Route::kTensorList: {
        nlohmann::json list = nlohmann::json::array();
        for (const TensorInfo& info : o.store->List()) list.push_back(InfoJson(info));
        return Reply(http::status::ok, nlohmann::json{{"tensors", list}}.dump() + "\n");
      }
      case Route::kTensorNpy:
        return SendNpy(route.handle);
      case Route::kMethodNotAllowed:
        return Error(http::status::method_not_allowed, route.error);
      case Route::kNotFound:
        break;
    }
    Error(http::status::not_found, route.error);
  }

  void SendNpy(const std::string& handle) {
    auto tensor = server_->options.store->Acquire(handle);
    if (!tensor.ok()) return Error(http::status::not_found, std::string(tensor.status().message()));
    auto reader = server_->options.transfer->OpenReader(*tensor);
    if (!reader.ok()) {
      return Error(http::status::internal_server_error, std::string(reader.status().message()));
    }
    const uint64_t total = (*tensor)->info().npy_bytes;
    auto range = req_.find(http::field::range);
    uint64_t first = 0, last = total - 1;
    bool whole = true;
    if (range != req_.end() &&
        !ParseByteRange(std::string(range->value()), total, &first, &last, &whole)) {
      auto res = std::make_shared<http::response<http::string_body>>(
          http::status::range_not_satisfiable, req_.version());
      res->set(http::field::content_range, absl::StrCat("bytes */", total));
      res->keep_alive(req_.keep_alive());
      res->prepare_payload();
      return http::async_write(
          stream_, *res, [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
            if (!ec) self->Read();
          });
    }
    if (whole) {
      first = 0;
      last = total - 1;
    }
    tensor_ = std::move(*tensor);
    reader_ = std::move(*reader);
    pos_ = first;
    end_ = last + 1;
    keep_alive_ = req_.keep_alive();
    head_ = absl::StrCat(
        "HTTP/1.1 ", whole ? "200 OK" : "206 Partial Content", "\r\n",
        "Server: npystreamd\r\nContent-Type: application/octet-stream\r\n",
        "Accept-Ranges: bytes\r\nContent-Length: ", end_ - pos_, "\r\n",
        whole ? "" : absl::StrCat("Content-Range: bytes ", first, "-", last, "/", total, "\r\n"),
        "Content-Disposition: attachment; filename=\"", handle, ".npy\"\r\n",
        keep_alive_ ? "" : "Connection: close\r\n", "\r\n");
    net::async_write(stream_, net::buffer(head_),
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->WriteBody();
                     });
  }

  // Writes the .npy bytes [pos_, end_): header bytes from the precomputed
  // header, payload as chunks of host memory from the transfer engine.
  void WriteBody() {
    chunk_ = {};
    if (pos_ >= end_) {
      tensor_.reset();
      reader_.reset();
      if (!keep_alive_) return Close();
      return Read();
    }
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    const std::string& header = tensor_->npy_header();
    auto self = this->shared_from_this();
    if (pos_ < header.size()) {
      const size_t n = std::min<uint64_t>(header.size(), end_) - pos_;
      const char* p = header.data() + pos_;
      pos_ += n;
      return net::async_write(stream_, net::buffer(p, n), [self](beast::error_code ec, size_t) {
        if (!ec) self->WriteBody();
      });
    }
    const uint64_t offset = pos_ - header.size();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kBodyPiece, end_ - pos_));
    reader_->Read(offset, n, [self, n](absl::StatusOr<HostChunk> chunk) {
      net::dispatch(self->stream_.get_executor(), [self, n, chunk = std::move(chunk)]() mutable {
        if (!chunk.ok()) return self->Close();
        self->chunk_ = std::move(*chunk);
        self->pos_ += n;
        net::async_write(self->stream_, net::buffer(self->chunk_.data, self->chunk_.size),
                         [self](beast::error_code ec, size_t) {
                           if (!ec) self->WriteBody();
                         });
      });
    });
  }

  AdminServer::Impl* const server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::shared_ptr<const StoredTensor> tensor_;
  std::unique_ptr<PayloadReader> reader_;
  HostChunk chunk_;
  std::string head_;
  uint64_t pos_ = 0;
  uint64_t end_ = 0;
  bool keep_alive_ = true;
};

}  // namespace

void AdminServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // header and body go in separate writes
      if (tls) {
        std::make_shared<Session<TlsStream>>(this, std::move(socket), *tls)->Run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket))->Run();
      }
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(const Options& options) {
  auto impl = std::make_unique<Impl>(options);
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen ", options.listen, ": use host:port"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = 0;
  if (!absl::SimpleAtoi(options.listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("--http-listen ", options.listen, ": bad port"));
  }
  if (!options.tls_cert_pem.empty()) {
    try {
      impl->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
      impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1);
      impl->tls->use_certificate_chain(net::buffer(options.tls_cert_pem));
      impl->tls->use_private_key(net::buffer(options.tls_key_pem), ssl::context::pem);
      if (!options.tls_client_ca_pem.empty()) {
        impl->tls->add_certificate_authority(net::buffer(options.tls_client_ca_pem));
        impl->tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
      }
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("admin TLS: ", e.what()));
    }
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen ", options.listen, ": ", ec.message()));
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("could not listen for HTTP on ", options.listen, ": ", ec.message()));
  }
  impl->Accept();
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc] { ioc->run(); });
  }
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { Stop(); }

int AdminServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void AdminServer::Stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) t.join();
}

}  // namespace npystream
