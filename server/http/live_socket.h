// LiveSocket: one browser's WebSocket subscription on the admin port. For
// every value sent, a text frame (LiveValueJson) then a binary frame with the
// exact .npy bytes. Fed by the engine's latest-only Subscription: while the
// socket is slow the newest value per layer waits and older ones are dropped
// (counted by the hub), so a stalled tab never queues or slows Infer. Thinned
// per layer by a StreamThinner. Frames are deflated (RFC 7692) when the
// browser offers permessage-deflate. Included by admin_server.cc only.
#ifndef NPYSTREAM_SERVER_HTTP_LIVE_SOCKET_H_
#define NPYSTREAM_SERVER_HTTP_LIVE_SOCKET_H_

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "server/common/json_text.h"
#include "server/common/log.h"
#include "server/engine/subscriptions.h"
#include "server/http/gzip_encoder.h"
#include "server/http/json_views.h"
#include "server/http/stream_thinner.h"
#include "server/views/views.h"

namespace npystream {

template <class Stream>
class LiveSocket : public std::enable_shared_from_this<LiveSocket<Stream>> {
 public:
  // `hub` and `views` must outlive the socket; `subscription` came from
  // the hub. A layer in `layer_views` is sent as that view (checked by
  // CheckViewRequest), the others whole. Call Start() on the stream's
  // executor.
  LiveSocket(Stream&& stream, SubscriptionHub* hub, std::shared_ptr<Subscription> subscription,
             const views::Views* views, std::map<std::string, views::ViewRequest> layer_views,
             const ThinPolicy& policy)
      : ws_(std::move(stream)),
        timer_(ws_.get_executor()),
        hub_(hub),
        subscription_(std::move(subscription)),
        views_(views),
        layer_views_(std::move(layer_views)),
        thinner_(policy) {}

  ~LiveSocket() { hub_->Unsubscribe(subscription_); }

  // Completes the WebSocket handshake for `request` (an upgrade), then
  // streams until the peer leaves or the server stops.
  template <class Body, class Fields>
  void Start(const boost::beast::http::request<Body, Fields>& request) {
    namespace websocket = boost::beast::websocket;
    boost::beast::get_lowest_layer(ws_).expires_never();  // the socket's own timeouts take over
    ws_.set_option(websocket::stream_base::timeout::suggested(boost::beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(boost::beast::http::field::server, "npystreamd");
    }));
    ws_.read_message_max(kMaxIncomingBytes);
    websocket::permessage_deflate deflate;  // used only when the browser offers it
    deflate.server_enable = true;
    deflate.compLevel = kDeflateLevel;
    ws_.set_option(deflate);
    ws_.async_accept(request, [self = this->shared_from_this()](boost::beast::error_code ec) {
      if (ec) return self->Stop();
      Log(LogLevel::kDebug, "live_socket_open",
          {{"model", self->subscription_->model()},
           {"layers", static_cast<int64_t>(self->subscription_->layers().size())}});
      self->ReadLoop();
      self->Pump();
    });
  }

 private:
  static constexpr size_t kMaxIncomingBytes = 4096;  // the browser sends nothing we use
  static constexpr size_t kPiece = 1 << 20;

  // Reads (and ignores) what the browser sends, so that pings are answered
  // and a close or a vanished peer ends the stream.
  void ReadLoop() {
    ws_.async_read(incoming_,
                   [self = this->shared_from_this()](boost::beast::error_code ec, size_t n) {
                     if (ec) return self->Stop();
                     self->incoming_.consume(n);
                     self->ReadLoop();
                   });
  }

  // On the strand: sends a held value that is due, else the next value the
  // thinner lets through; otherwise waits for the subscription or the timer.
  void Pump() {
    if (writing_ || stopped_) return;
    const absl::Time now = absl::Now();
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (thinner_.Due(it->first) <= now) {
        LiveValue value = std::move(it->second);
        held_.erase(it);
        return Send(std::move(value));
      }
    }
    for (;;) {
      LiveValue value = subscription_->TakeOrNotify(
          [weak = this->weak_from_this(), executor = ws_.get_executor()] {
            boost::asio::post(executor, [weak] {
              if (auto self = weak.lock()) self->Pump();
            });
          });
      if (value.tensor == nullptr) break;
      switch (thinner_.Offer(value.layer, value.seq, now)) {
        case StreamThinner::Verdict::kSend:
          return Send(std::move(value));
        case StreamThinner::Verdict::kHold: {
          std::string layer = value.layer;
          held_[std::move(layer)] = std::move(value);  // a newer value replaces a held one
          break;
        }
        case StreamThinner::Verdict::kSkip:
          break;
      }
    }
    ArmTimer();
  }

  void ArmTimer() {
    if (held_.empty()) return;
    absl::Time due = absl::InfiniteFuture();
    for (const auto& entry : held_) due = std::min(due, thinner_.Due(entry.first));
    const auto wait = absl::ToChronoMicroseconds(std::max(due - absl::Now(), absl::ZeroDuration()));
    timer_.expires_after(wait);
    timer_.async_wait([self = this->shared_from_this()](boost::beast::error_code ec) {
      if (!ec) self->Pump();
    });
  }

  void Send(LiveValue value) {
    const auto view = layer_views_.find(value.layer);
    absl::StatusOr<views::NpySource> source = views_->Open(
        value.tensor, view == layer_views_.end() ? views::ViewRequest{} : view->second);
    if (absl::IsInvalidArgument(source.status())) {  // the layer's view does not fit its values
      return Refuse(source.status());
    }
    if (!source.ok()) {  // this value cannot be read here: skip it
      Log(LogLevel::kWarning, "live_value_skipped",
          {{"layer", value.layer}, {"error", source.status().message()}});
      return Pump();
    }
    writing_ = true;
    npy_.assign(source->npy_header);
    npy_.reserve(source->info.npy_bytes);
    current_info_ = source->info;
    reader_ = std::move(source->reader);
    pin_ = std::move(source->pin);
    current_ = std::move(value);
    ReadPayload(0);
  }

  void ReadPayload(uint64_t offset) {
    const uint64_t nbytes = current_info_.nbytes;
    if (offset >= nbytes) return WriteFrames();
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, nbytes - offset));
    reader_->Read(
        offset, n, [self = this->shared_from_this(), offset](absl::StatusOr<HostChunk> chunk) {
          boost::asio::dispatch(self->ws_.get_executor(), [self, offset,
                                                           chunk = std::move(chunk)]() mutable {
            if (!chunk.ok()) {
              Log(LogLevel::kWarning, "live_value_failed", {{"error", chunk.status().message()}});
              return self->Stop();
            }
            self->npy_.append(chunk->data, chunk->size);
            const uint64_t next = offset + chunk->size;
            chunk = HostChunk{};  // hand a staging slot back before the next read
            self->ReadPayload(next);
          });
        });
  }

  void WriteFrames() {
    text_ = JsonText(LiveValueJson(current_, current_info_));
    ws_.text(true);
    ws_.async_write(boost::asio::buffer(text_), [self = this->shared_from_this()](
                                                    boost::beast::error_code ec, size_t) {
      if (ec) return self->Stop();
      self->ws_.binary(true);
      self->ws_.async_write(
          boost::asio::buffer(self->npy_), [self](boost::beast::error_code ec, size_t) {
            if (ec) return self->Stop();
            self->thinner_.Sent(self->current_.layer, self->current_.seq, absl::Now());
            self->current_ = {};
            self->reader_.reset();
            self->pin_.reset();
            self->writing_ = false;
            self->Pump();
          });
    });
  }

  // Ends the stream with a close frame (policy) whose reason names `status`'s
  // defect, as the gRPC Subscribe ends with INVALID_ARGUMENT.
  void Refuse(const absl::Status& status) {
    Log(LogLevel::kWarning, "live_view_refused", {{"error", status.message()}});
    Stop();
    std::string reason(status.message().substr(0, 123));  // a close reason's limit
    ws_.async_close(boost::beast::websocket::close_reason(
                        boost::beast::websocket::close_code::policy_error, reason),
                    [self = this->shared_from_this()](boost::beast::error_code) {});
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    hub_->Unsubscribe(subscription_);
    timer_.cancel();
    held_.clear();
  }

  boost::beast::websocket::stream<Stream> ws_;
  boost::asio::steady_timer timer_;
  SubscriptionHub* const hub_;
  const std::shared_ptr<Subscription> subscription_;
  const views::Views* const views_;
  const std::map<std::string, views::ViewRequest> layer_views_;
  StreamThinner thinner_;
  boost::beast::flat_buffer incoming_;
  std::map<std::string, LiveValue> held_;  // per layer: the newest value not yet due
  LiveValue current_;                      // being sent
  TensorInfo current_info_;                // what is sent: the value's, or its view's
  std::unique_ptr<PayloadReader> reader_;
  std::shared_ptr<const StoredTensor> pin_;  // the value, or its device view, while it is read
  std::string text_;
  std::string npy_;
  bool writing_ = false;
  bool stopped_ = false;
};

}  // namespace npystream

#endif  // NPYSTREAM_SERVER_HTTP_LIVE_SOCKET_H_
