#include "server/http/admin_server.h"

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "server/common/json_text.h"
#include "server/common/log.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/common/token.h"
#include "server/http/byte_range.h"
#include "server/http/gzip_encoder.h"
#include "server/http/http_status.h"
#include "server/http/json_views.h"
#include "server/http/live_socket.h"
#include "server/http/routes.h"
#include "server/http/stream_thinner.h"
#include "server/http/web_assets.h"
#include "server/oip/oip_infer.h"
#include "server/oip/oip_rest.h"
#include "server/peers/remote_npy.h"
#include "server/peers/unary_relay.h"

namespace npystream {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

constexpr size_t kBodyPiece = 1 << 20;
constexpr auto kIoTimeout = std::chrono::seconds(60);
constexpr size_t kMaxHeaderBytes = 8 * 1024;  // Beast's default request header limit
constexpr absl::string_view kTokenCookie = "npystream_token";
constexpr uint64_t kMaxBodyBytes = uint64_t{1}
                                   << 30;  // an infer body, unless --max-put-bytes is less
// The dashboard's page may load and connect only to this daemon.
constexpr const char* kDashboardPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'";

std::vector<std::string> SplitList(const std::map<std::string, std::string>& query,
                                   const char* name) {
  const auto it = query.find(name);
  if (it == query.end()) return {};
  return absl::StrSplit(it->second, ',', absl::SkipWhitespace());
}

}  // namespace

struct AdminServer::Impl {
  explicit Impl(const Options& o)
      : options(o), acceptor(ioc), infer_pool(std::max(1, o.infer_threads)) {}
  void Accept();
  uint64_t body_limit() const {
    const PutLimits& p = options.put_limits;
    return std::min<uint64_t>(kMaxBodyBytes, p.max_tensor_bytes == ~uint64_t{0}
                                                 ? kMaxBodyBytes
                                                 : p.max_tensor_bytes + p.parse.max_header_bytes);
  }

  Options options;
  std::unique_ptr<views::Views> own_views;  // when Options::views is null
  net::io_context ioc;
  std::unique_ptr<ssl::context> tls;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopped{false};
  ThreadPool infer_pool;  // declared after ioc: drained before it is destroyed
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
    set_cookie_.clear();
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(server_->body_limit());
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       if (ec == http::error::end_of_stream) return self->Close();
                       if (!ec) {
                         self->req_ = self->parser_->release();
                         return self->Handle();
                       }
                       self->req_ = self->parser_->get();  // for the version and method
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
      return Error(http::status::payload_too_large,
                   absl::StrCat("request body exceeds ", server_->body_limit(), " bytes"));
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

  void Reply(http::status status, std::string body, absl::string_view type = "application/json",
             std::initializer_list<std::pair<absl::string_view, absl::string_view>> headers = {}) {
    auto res = std::make_shared<http::response<http::string_body>>(status, req_.version());
    res->set(http::field::server, "npystreamd");
    res->set(http::field::content_type, beast::string_view(type.data(), type.size()));
    if (!set_cookie_.empty()) res->set(http::field::set_cookie, set_cookie_);
    for (const auto& [name, value] : headers) {
      res->set(beast::string_view(name.data(), name.size()),
               beast::string_view(value.data(), value.size()));
    }
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

  void Error(http::status status, const std::string& message,
             std::initializer_list<std::pair<absl::string_view, absl::string_view>> headers = {}) {
    Reply(status, JsonText(nlohmann::json{{"error", message}}) + "\n", "application/json", headers);
  }
  void Error(const absl::Status& status) {
    Error(static_cast<http::status>(HttpStatusCode(status)), std::string(status.message()));
  }

  // A bearer header; or a `token` query parameter, which also sets a cookie
  // (HttpOnly, SameSite=Strict) so the page can drop the token from its URL
  // and still reload, load its scripts and open its WebSocket; or that cookie.
  bool Authorized(const Route& route) {
    const std::string& token = server_->options.token;
    if (token.empty()) return true;
    auto it = req_.find(http::field::authorization);
    if (it != req_.end()) return BearerTokenMatches(std::string(it->value()), token);
    const auto query = route.query.find("token");
    if (query != route.query.end()) {
      if (!BearerTokenMatches(absl::StrCat("Bearer ", query->second), token)) return false;
      set_cookie_ =
          absl::StrCat(kTokenCookie, "=", absl::BytesToHexString(token),
                       "; Path=/; HttpOnly; SameSite=Strict", server_->tls ? "; Secure" : "");
      return true;
    }
    const std::string cookie = CookieValue(kTokenCookie);
    return !cookie.empty() &&
           BearerTokenMatches(absl::StrCat("Bearer ", absl::HexStringToBytes(cookie)), token);
  }

  // The value of cookie `name` in the request ("" when absent).
  std::string CookieValue(absl::string_view name) {
    auto it = req_.find(http::field::cookie);
    if (it == req_.end()) return "";
    for (absl::string_view part : absl::StrSplit(
             absl::string_view(it->value().data(), it->value().size()), ';', absl::SkipEmpty())) {
      part = absl::StripAsciiWhitespace(part);
      if (absl::StartsWith(part, name) && part.size() > name.size() && part[name.size()] == '=') {
        return std::string(part.substr(name.size() + 1));
      }
    }
    return "";
  }

  // A browser's WebSocket from another site's page is refused (the cookie
  // would otherwise let it read activations), unless --http-allow-origin
  // names that site.
  bool SameOrigin() {
    auto origin = req_.find(http::field::origin);
    auto host = req_.find(http::field::host);
    if (origin == req_.end()) return true;  // not a browser
    const absl::string_view o(origin->value().data(), origin->value().size());
    for (const std::string& allowed : server_->options.allowed_origins) {
      if (o == allowed) return true;
    }
    if (host == req_.end()) return false;
    const size_t scheme = o.find("://");
    return scheme != absl::string_view::npos &&
           o.substr(scheme + 3) == absl::string_view(host->value().data(), host->value().size());
  }

  void Handle() {
    const auto& o = server_->options;
    const beast::string_view method = req_.method_string(), target = req_.target();
    const Route route = MatchRoute(absl::string_view(method.data(), method.size()),
                                   absl::string_view(target.data(), target.size()));
    if (route.needs_token && !Authorized(route)) {
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
                     JsonText(nlohmann::json{{"ready", false}, {"reason", reason}}) + "\n");
      }
      case Route::kDashboard:
      case Route::kAsset: {
        const WebAsset* asset =
            FindWebAsset(route.kind == Route::kDashboard ? "index.html" : route.asset);
        if (asset == nullptr) break;
        return Reply(http::status::ok, std::string(asset->body), asset->content_type,
                     {{"Cache-Control", "no-cache"},
                      {"Content-Security-Policy", kDashboardPolicy},
                      {"X-Content-Type-Options", "nosniff"}});
      }
      case Route::kTensorList: {
        nlohmann::json list = nlohmann::json::array();
        for (const TensorInfo& info : o.store->List()) list.push_back(TensorInfoJson(info));
        return Reply(http::status::ok, JsonText(nlohmann::json{{"tensors", list}}) + "\n");
      }
      case Route::kTensorNpy:
        return SendNpy(route.handle, route.query);
      case Route::kTensorInfo:
        return SendInfo(route.handle);
      case Route::kModelList:
        return Reply(
            http::status::ok,
            JsonText(ModelListingJson(o.engine ? o.engine->ListModels() : ModelListing{})) + "\n");
      case Route::kModelInfer:
        return Infer(route);
      case Route::kModelSubscribe:
        return Subscribe(route);
      case Route::kOipServer:
        return Reply(http::status::ok, JsonText(OipServerJson()));
      case Route::kOipLive:
        return Reply(http::status::ok, "");
      case Route::kOipReady: {
        const std::string reason = o.not_ready_reason ? o.not_ready_reason() : "";
        if (reason.empty()) return Reply(http::status::ok, "");
        return Error(http::status::service_unavailable, reason);
      }
      case Route::kOipModel:
      case Route::kOipModelReady: {
        absl::StatusOr<ModelSummary> model = FindModel(route);
        if (!model.ok()) return Error(model.status());
        if (route.kind == Route::kOipModelReady) return Reply(http::status::ok, "");
        return Reply(http::status::ok, JsonText(OipModelJson(*model)));
      }
      case Route::kOipInfer:
        return OipInfer(route);
      case Route::kMethodNotAllowed:
        return Error(http::status::method_not_allowed, route.error, {{"Allow", route.allow}});
      case Route::kNotFound:
        break;
    }
    Error(http::status::not_found,
          route.error.empty() ? absl::StrCat("no dashboard file ", route.asset) : route.error);
  }

  // POST /v1/models/{m}/infer?capture=a,b&ttl=S, body one .npy for a
  // single-input model. Runs on the infer pool; the reply comes back on
  // this connection's strand.
  void Infer(const Route& route) {
    InferenceEngine* engine = server_->options.engine;
    if (engine == nullptr) return Error(absl::NotFoundError("this daemon serves no models"));
    const auto type = req_.find(http::field::content_type);
    if (type != req_.end() && type->value() != "application/x-npy" &&
        type->value() != "application/octet-stream") {
      return Error(http::status::unsupported_media_type,
                   absl::StrCat("Content-Type ", std::string(type->value()),
                                ": send the .npy as application/x-npy"));
    }
    InferCall call;
    call.model = route.model;
    call.capture = SplitList(route.query, "capture");
    if (auto ttl = route.query.find("ttl"); ttl != route.query.end()) {
      if (!absl::SimpleAtoi(ttl->second, &call.ttl_seconds)) {
        return Error(
            absl::InvalidArgumentError(absl::StrCat("ttl=", ttl->second, ": use whole seconds")));
      }
    }
    auto self = this->shared_from_this();
    server_->infer_pool.Schedule([self, engine, call = std::move(call)]() mutable {
      absl::StatusOr<nlohmann::json> reply = self->RunInfer(engine, &call);
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)] {
        if (!reply.ok()) return self->Error(reply.status());
        self->Reply(http::status::ok, JsonText(*reply) + "\n");
      });
    });
  }

  absl::StatusOr<nlohmann::json> RunInfer(InferenceEngine* engine, InferCall* call) {
    ASSIGN_OR_RETURN(const ModelSummary model, engine->Describe(call->model));
    if (model.inputs.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", call->model, "' takes ", model.inputs.size(),
                       " inputs; POST .../infer sends one .npy (use gRPC Infer)"));
    }
    absl::StatusOr<std::shared_ptr<const StoredTensor>> input =
        StoreWholeNpy(server_->options.store, req_.body(), server_->options.put_limits);
    if (!input.ok()) {
      return absl::Status(input.status().code(), absl::StrCat("body: ", input.status().message()));
    }
    call->inputs.push_back({model.inputs[0].name, std::move(*input)});
    absl::StatusOr<InferResult> result = engine->Infer(*call);
    call->inputs.clear();  // the input's memory goes back now, not with the reply
    if (!result.ok()) return result.status();
    return InferResultJson(*result);
  }

  // The model a /v2 route names: NOT_FOUND for an unknown model or version.
  absl::StatusOr<ModelSummary> FindModel(const Route& route) {
    if (server_->options.engine == nullptr) {
      return absl::NotFoundError("this daemon serves no models");
    }
    return oip::FindServedModel(server_->options.engine, route.model, route.version);
  }

  // POST /v2/models/{m}/infer: JSON, or JSON then binary data
  // (Inference-Header-Content-Length). Runs on the infer pool.
  void OipInfer(const Route& route) {
    absl::StatusOr<ModelSummary> model = FindModel(route);
    if (!model.ok()) return Error(model.status());
    std::optional<uint64_t> json_length;
    if (auto h = req_.find(oip::kHeaderLengthField); h != req_.end()) {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(std::string(h->value()), &n)) {
        return Error(absl::InvalidArgumentError(absl::StrCat(
            oip::kHeaderLengthField, ": ", std::string(h->value()), " is not a byte count")));
      }
      json_length = n;
    }
    auto self = this->shared_from_this();
    server_->infer_pool.Schedule([self, model = route.model, json_length] {
      absl::StatusOr<oip::RestInferReply> reply = self->RunOipInfer(model, json_length);
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)] {
        if (!reply.ok()) return self->Error(reply.status());
        if (reply->binary.empty()) return self->Reply(http::status::ok, reply->json);
        // JSON then each binary output, copied once into the reply body.
        std::string body = reply->json;
        for (const auto& t : reply->binary) body.append(t->host_data(), t->info().nbytes);
        const std::string length = std::to_string(reply->json.size());
        self->Reply(http::status::ok, std::move(body), "application/octet-stream",
                    {{oip::kHeaderLengthField, length}});
      });
    });
  }

  absl::StatusOr<oip::RestInferReply> RunOipInfer(const std::string& model,
                                                  std::optional<uint64_t> json_length) {
    ASSIGN_OR_RETURN(oip::RestInferRequest request,
                     oip::ParseRestInfer(model, req_.body(), json_length));
    oip::InferOptions options;
    options.limits = server_->options.put_limits;
    ASSIGN_OR_RETURN(
        oip::InferOutcome outcome,
        oip::RunModelInfer(
            server_->options.engine, server_->options.store, request.request, request.raw.size(),
            [&request](size_t index, const oip::Sink& sink) {
              const absl::string_view raw = request.raw[index];
              return sink(raw.data(), raw.size());
            },
            options));
    return oip::FormatRestInfer(outcome, request);
  }

  // GET /v1/models/{m}/subscribe?layers=a,b[&every=N][&max_hz=H]
  // [&view.<layer>.index=&view.<layer>.dtype=&view.<layer>.pool=]: a
  // WebSocket upgrade. Refused before the handshake: 404 naming an unknown
  // model or layer, 400 naming a bad view.
  void Subscribe(const Route& route) {
    InferenceEngine* engine = server_->options.engine;
    if (engine == nullptr) return Error(absl::NotFoundError("this daemon serves no models"));
    if (!SameOrigin()) {
      return Error(http::status::forbidden, "WebSocket Origin does not match Host");
    }
    absl::StatusOr<ThinPolicy> policy = ParseThinPolicy(route.query);
    if (!policy.ok()) return Error(policy.status());
    const std::vector<std::string> layers = SplitList(route.query, "layers");
    if (layers.empty()) {
      return Error(absl::InvalidArgumentError("subscribe needs ?layers=a,b (one or more)"));
    }
    std::map<std::string, views::ViewRequest> layer_views;
    for (const std::string& layer : layers) {
      absl::StatusOr<views::ViewRequest> view =
          ViewFromQuery(route.query, absl::StrCat("view.", layer, "."));
      if (view.ok()) {
        if (absl::Status valid = views::CheckViewRequest(*view); !valid.ok()) view = valid;
      }
      if (!view.ok()) {
        return Error(absl::InvalidArgumentError(
            absl::StrCat("layer '", layer, "': ", view.status().message())));
      }
      if (!view->whole()) layer_views.emplace(layer, *std::move(view));
    }
    absl::StatusOr<std::shared_ptr<Subscription>> subscription =
        engine->Subscribe(route.model, layers);
    if (absl::IsInvalidArgument(subscription.status())) {
      // With layers given, the engine refuses only a layer the model lacks:
      // on this URL that is a missing resource, as a missing model is.
      subscription = absl::NotFoundError(subscription.status().message());
    }
    if (!subscription.ok()) return Error(subscription.status());
    if (!websocket::is_upgrade(req_)) {
      engine->hub()->Unsubscribe(*subscription);
      return Error(http::status::upgrade_required,
                   "subscribe is a WebSocket: send Connection: Upgrade, Upgrade: websocket",
                   {{"Upgrade", "websocket"}});
    }
    std::make_shared<LiveSocket<Stream>>(std::move(stream_), engine->hub(),
                                         std::move(*subscription), server_->options.views,
                                         std::move(layer_views), *policy)
        ->Start(req_);
  }

  // GET /v1/tensors/{h}: the tensor's info as JSON (a row of /v1/tensors);
  // another replica's from its owner (a relayed Stat).
  void SendInfo(const std::string& handle) {
    if (peers::Peers* peers = server_->options.peers) {
      if (const std::string owner = peers->OwnerElsewhere(handle); !owner.empty()) {
        struct Exchange {
          npystream::v1::TensorRef request;
          npystream::v1::TensorInfo response;
        };
        auto exchange = std::make_shared<Exchange>();
        exchange->request.set_handle(handle);
        const std::string& token = server_->options.token;
        peers::RelayUnary(peers,
                          peers->OpenPlain(token.empty() ? "" : absl::StrCat("Bearer ", token),
                                           "HttpInfo", owner),
                          "Stat", exchange->request, &exchange->response,
                          [self = this->shared_from_this(), exchange](const grpc::Status& status) {
                            net::dispatch(self->stream_.get_executor(), [self, exchange, status] {
                              if (!status.ok()) return self->Error(peers::FromGrpcStatus(status));
                              self->Reply(http::status::ok,
                                          JsonText(TensorInfoJson(exchange->response)) + "\n");
                            });
                          });
        return;
      }
    }
    auto tensor = server_->options.store->Acquire(handle);
    if (!tensor.ok()) return Error(tensor.status());
    Reply(http::status::ok, JsonText(TensorInfoJson((*tensor)->info())) + "\n");
  }

  // GET /v1/tensors/{h}.npy[?index=&dtype=&pool=]: the tensor's .npy, or a
  // view's (Range applies to the view's bytes).
  void SendNpy(const std::string& handle, const std::map<std::string, std::string>& query) {
    absl::StatusOr<views::ViewRequest> view = ViewFromQuery(query, "");
    if (!view.ok()) return Error(view.status());
    if (peers::Peers* peers = server_->options.peers) {
      if (const std::string owner = peers->OwnerElsewhere(handle); !owner.empty()) {
        return SendRemoteNpy(peers, handle, owner, *view);
      }
    }
    auto tensor = server_->options.store->Acquire(handle);
    if (!tensor.ok()) return Error(tensor.status());
    absl::StatusOr<views::NpySource> source =
        server_->options.views->Open(*std::move(tensor), *view);
    if (!source.ok()) return Error(source.status());
    const uint64_t total = source->info.npy_bytes;
    bool whole = true;
    if (!StartRange(total, &whole)) return;
    source_ = *std::move(source);
    // gzip for a whole body the peer accepts; a Range names identity bytes.
    const auto accept = req_.find(http::field::accept_encoding);
    if (req_.find(http::field::range) == req_.end() && accept != req_.end() &&
        AcceptsGzip(std::string(accept->value()))) {
      absl::StatusOr<std::unique_ptr<GzipEncoder>> gzip = GzipEncoder::Create();
      if (!gzip.ok()) return Error(gzip.status());
      gzip_ = *std::move(gzip);
    }
    SendNpyHead(handle, whole, total, [self = this->shared_from_this()] { self->WriteBody(); });
  }

  // Sets pos_ and end_ to the bytes of a `total`-byte body the request's
  // Range asks for (all without one) and `*whole`; false after answering
  // 416 for a Range that cannot be met.
  bool StartRange(uint64_t total, bool* whole) {
    auto range = req_.find(http::field::range);
    uint64_t first = 0, last = total - 1;
    *whole = true;
    if (range != req_.end() &&
        !ParseByteRange(std::string(range->value()), total, &first, &last, whole)) {
      auto res = std::make_shared<http::response<http::string_body>>(
          http::status::range_not_satisfiable, req_.version());
      res->set(http::field::content_range, absl::StrCat("bytes */", total));
      res->keep_alive(req_.keep_alive());
      res->prepare_payload();
      http::async_write(stream_, *res,
                        [self = this->shared_from_this(), res](beast::error_code ec, size_t) {
                          if (!ec) self->Read();
                        });
      return false;
    }
    if (*whole) {
      first = 0;
      last = total - 1;
    }
    pos_ = first;
    end_ = last + 1;
    keep_alive_ = req_.keep_alive();
    return true;
  }

  // The response head for the .npy bytes [pos_, end_) of `total`; then `next`.
  void SendNpyHead(const std::string& handle, bool whole, uint64_t total,
                   const std::function<void()>& next) {
    head_ = absl::StrCat(
        "HTTP/1.1 ", whole ? "200 OK" : "206 Partial Content", "\r\n",
        "Server: npystreamd\r\nContent-Type: application/octet-stream\r\n",
        "Accept-Ranges: bytes\r\nVary: Accept-Encoding\r\n",
        gzip_ ? "Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"
              : absl::StrCat("Content-Length: ", end_ - pos_, "\r\n"),
        whole ? "" : absl::StrCat("Content-Range: bytes ", pos_, "-", end_ - 1, "/", total, "\r\n"),
        "Content-Disposition: attachment; filename=\"", handle, ".npy\"\r\n",
        keep_alive_ ? "" : "Connection: close\r\n", "\r\n");
    net::async_write(stream_, net::buffer(head_),
                     [self = this->shared_from_this(), next](beast::error_code ec, size_t) {
                       if (!ec) next();
                     });
  }

  // Another replica's tensor: its .npy read from the owner as it is sent
  // (identity encoding; Range applies as here).
  void SendRemoteNpy(peers::Peers* peers, const std::string& handle, const std::string& owner,
                     const views::ViewRequest& view) {
    npystream::v1::FetchRequest request;
    request.set_handle(handle);
    request.mutable_view()->set_index(view.index);
    request.mutable_view()->set_dtype(view.dtype);
    request.mutable_view()->set_pool(view.pool);
    const std::string& token = server_->options.token;
    peers::Peers::Call call =
        peers->OpenPlain(token.empty() ? "" : absl::StrCat("Bearer ", token), "HttpNpy", owner);
    auto self = this->shared_from_this();
    peers::RemoteNpy::Open(
        peers, std::move(call), request,
        [self, handle](absl::StatusOr<std::unique_ptr<peers::RemoteNpy>> remote) {
          auto shared = std::make_shared<decltype(remote)>(std::move(remote));
          net::dispatch(self->stream_.get_executor(), [self, handle, shared] {
            if (!shared->ok()) return self->Error(shared->status());
            const uint64_t total = (**shared)->info().npy_bytes();
            bool whole = true;
            if (!self->StartRange(total, &whole)) return;
            self->remote_ = *std::move(*shared);
            self->remote_at_ = 0;
            self->SendNpyHead(handle, whole, total, [self] { self->WriteRemoteBody(); });
          });
        });
  }

  // Writes [pos_, end_) of the owner's bytes as they arrive, skipping those
  // before pos_; the owner's stream is cancelled once end_ is reached.
  void WriteRemoteBody() {
    if (pos_ >= end_) {
      remote_.reset();
      if (!keep_alive_) return Close();
      return Read();
    }
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    remote_->Next([self = this->shared_from_this()](absl::StatusOr<std::string> bytes) {
      auto shared = std::make_shared<absl::StatusOr<std::string>>(std::move(bytes));
      net::dispatch(self->stream_.get_executor(), [self, shared] {
        // An error or an early end after the head: only hanging up tells.
        if (!shared->ok() || (*shared)->empty()) return self->Close();
        self->piece_ = std::move(**shared);
        const uint64_t at = self->remote_at_;
        self->remote_at_ += self->piece_.size();
        const uint64_t from = std::max(at, self->pos_);
        const uint64_t to = std::min(self->remote_at_, self->end_);
        if (from >= to) return self->WriteRemoteBody();
        self->pos_ = to;
        net::async_write(self->stream_, net::buffer(self->piece_.data() + (from - at), to - from),
                         [self](beast::error_code ec, size_t) {
                           if (!ec) self->WriteRemoteBody();
                         });
      });
    });
  }

  // Writes the .npy bytes [pos_, end_): header bytes from the precomputed
  // header, payload as chunks of host memory from the transfer engine.
  void WriteBody() {
    chunk_ = {};
    if (pos_ >= end_) {
      if (gzip_) {
        Log(LogLevel::kDebug, "npy_gzip",
            {{"bytes_in", static_cast<int64_t>(gzip_->bytes_in())},
             {"bytes_out", static_cast<int64_t>(gzip_->bytes_out())}});
      }
      source_.reset();
      gzip_.reset();
      if (!keep_alive_) return Close();
      return Read();
    }
    beast::get_lowest_layer(stream_).expires_after(kIoTimeout);
    const std::string& header = source_->npy_header;
    if (pos_ < header.size()) {
      const size_t n = std::min<uint64_t>(header.size(), end_) - pos_;
      const char* p = header.data() + pos_;
      pos_ += n;
      return SendPiece(p, n);
    }
    const uint64_t offset = pos_ - header.size();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kBodyPiece, end_ - pos_));
    source_->reader->Read(
        offset, n, [self = this->shared_from_this()](absl::StatusOr<HostChunk> chunk) {
          net::dispatch(self->stream_.get_executor(), [self, chunk = std::move(chunk)]() mutable {
            if (!chunk.ok()) return self->Close();
            self->chunk_ = std::move(*chunk);
            self->pos_ += self->chunk_.size;  // a device reader may return less than asked
            self->SendPiece(self->chunk_.data, self->chunk_.size);
          });
        });
  }

  // Sends the body bytes [p, p + n) (pos_ already past them): as they are,
  // or through gzip_ as one HTTP chunk, the last one closing the body.
  void SendPiece(const char* p, size_t n) {
    auto next = [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (!ec) self->WriteBody();
    };
    if (!gzip_) return net::async_write(stream_, net::buffer(p, n), std::move(next));
    const bool last = pos_ >= end_;
    zbuf_.clear();
    if (!gzip_->Append(absl::string_view(p, n), last, &zbuf_).ok()) return Close();
    if (zbuf_.empty()) return net::post(stream_.get_executor(), [next] { next({}, 0); });
    chunk_head_ = absl::StrCat(absl::Hex(zbuf_.size()), "\r\n");
    zbuf_.append(last ? "\r\n0\r\n\r\n" : "\r\n");
    net::async_write(stream_, std::array{net::buffer(chunk_head_), net::buffer(zbuf_)},
                     std::move(next));
  }

  AdminServer::Impl* const server_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string set_cookie_;  // for the reply to a request authorised by ?token=
  http::request<http::string_body> req_;
  std::optional<views::NpySource> source_;    // the .npy being sent
  std::unique_ptr<peers::RemoteNpy> remote_;  // or another replica's, as it arrives
  uint64_t remote_at_ = 0;                    // offset of its next bytes in the file
  std::string piece_;                         // its bytes being written
  HostChunk chunk_;
  std::unique_ptr<GzipEncoder> gzip_;  // set while a gzip body is sent
  std::string zbuf_;                   // one gzip chunk, framed
  std::string chunk_head_;             // its size line
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
  if (impl->options.views == nullptr) {
    impl->own_views = std::make_unique<views::Views>(
        views::Views::Options{options.transfer, options.store, nullptr, false});
    impl->options.views = impl->own_views.get();
  }
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
