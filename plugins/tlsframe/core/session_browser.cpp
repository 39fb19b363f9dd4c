// Session, the browser front's part (ALPN http/1.1): the request, then a
// one-shot response, or the stream as a WebSocket (caps as text, the v2
// messages as binary) or as multipart JPEG. A browser is a client like any
// other once it names a stream: join() gives it the same queue, keyframe
// gating, limits, counters, authorization and signals as a native client;
// only the framing of what it is sent differs (browser::frame(), applied in
// do_write()). Hostile input closes this connection alone.
//
// Threads: the session's strand, like the rest of Session.
#include <cinttypes>
#include <string>

#include "core/http_front.h"
#include "core/log.h"
#include "core/session.h"
#include "core/stream.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;

}  // namespace

void Session::start_browser() {
  // The stream's v2 messages are what a browser's WebSocket carries.
  version_ = wire::Version::kV2;
  client_messages_ = ClientMessages::kBrowser;
  browser_ = std::make_unique<browser::Link>();
}

void Session::on_browser_bytes(const uint8_t *data, size_t size) {
  browser::Link &link = *browser_;
  if (link.framing == browser::Framing::kRequest) {
    if (phase_ != Phase::kSelecting) return;
    const http::RequestParser::Result r = link.request.feed(data, size);
    if (r.status == http::RequestParser::Status::kNeedMore) return;
    if (r.status == http::RequestParser::Status::kError) {
      TF_WARNING(kComp, "client %" PRIu64 " %s: bad HTTP request (%d): %s; dropping it", info_.id,
                 info_.address.c_str(), r.http_status, r.error.c_str());
      send_browser_final(http::error_response(r.http_status, r.error), RemoveReason::kProtocol);
      return;
    }
    data += r.consumed;
    size -= r.consumed;
    on_http_request();
  }
  // Only a WebSocket client talks after its request; what others send is ignored.
  if (link.framing != browser::Framing::kWebSocket) return;
  while (size > 0 && !closed() &&
         (phase_ == Phase::kStreaming || phase_ == Phase::kSelecting ||
          phase_ == Phase::kAuthorizing)) {
    const ws::FrameDecoder::Result r = link.frames.feed(data, size);
    data += r.consumed;
    size -= r.consumed;
    if (r.status == ws::FrameDecoder::Status::kError) {
      TF_WARNING(kComp, "client %" PRIu64 " %s: bad WebSocket frame: %s; dropping it", info_.id,
                 info_.address.c_str(), r.error.c_str());
      set_last_error("bad WebSocket frame");
      send_browser_final(ws::encode_close(r.close_code, r.error), RemoveReason::kProtocol);
      return;
    }
    if (r.status == ws::FrameDecoder::Status::kNeedMore) return;
    on_ws_frame(link.frames.frame());
  }
}

void Session::on_http_request() {
  const http::Request &req = browser_->request.request();
  const http::Route route = http::route(req, host_->list_streams());
  TF_DEBUG(kComp, "client %" PRIu64 " %s: %s %s -> %d", info_.id, info_.address.c_str(),
           req.method.c_str(), req.path.c_str(), route.status);
  switch (route.action) {
    case http::Action::kRespond:
      if (route.status >= 400) {
        TF_INFO(kComp, "client %" PRIu64 " %s: %s %s: %d %s", info_.id, info_.address.c_str(),
                req.method.c_str(), req.path.substr(0, 128).c_str(), route.status,
                route.error.c_str());
      }
      send_browser_final(route.response,
                         route.status == 400 || route.status == 403 || route.status == 426
                             ? RemoveReason::kProtocol
                             : RemoveReason::kClosed);
      return;
    case http::Action::kWebSocket:
    case http::Action::kMjpeg:
      // The upgrade (or the multipart 200) waits for the authorization:
      // join() sends it once the client may have the stream
      // (start_browser_stream()); a refusal, before or after the
      // application's accept-client answer, is a 403 response while the
      // connection is still kRequest (browser::frame() maps the ERROR).
      browser_->held_framing = route.action == http::Action::kWebSocket
                                   ? browser::Framing::kWebSocket
                                   : browser::Framing::kMjpeg;
      browser_->held_response = route.response;
      join(route.stream);
      return;
  }
}

void Session::start_browser_stream() {
  browser::Link &link = *browser_;
  if (link.framing != browser::Framing::kRequest || link.held_response.empty()) return;
  link.framing = link.held_framing;
  send_control(browser::raw(std::move(link.held_response), wire::MessageType::kWelcome));
  link.held_response.clear();
}

void Session::on_ws_frame(const ws::Frame &frame) {
  // Every frame counts against the message rate, as a v2 client's messages do.
  if (!limiter_ || !limiter_->allow(std::chrono::steady_clock::now())) {
    TF_WARNING(kComp, "client %" PRIu64 " %s: over %u messages/s (bursts of %u); dropping it",
               info_.id, info_.address.c_str(), wire::kClientMessageRate,
               wire::kClientMessageBurst);
    send_browser_final(ws::encode_close(ws::kClosePolicy, "rate limited"), RemoveReason::kProtocol);
    return;
  }
  switch (frame.op) {
    case ws::Opcode::kClose:
      send_browser_final(ws::encode_close(ws::kCloseNormal, ""), RemoveReason::kClosed);
      return;
    case ws::Opcode::kPing:
      send_control(browser::raw(
          ws::encode_frame(ws::Opcode::kPong, frame.payload.data(), frame.payload.size()),
          wire::MessageType::kWelcome));
      return;
    case ws::Opcode::kBinary: {
      // A v2 client message, whole, in one binary message: KEYFRAME_REQUEST
      // or RENDITION_REQUEST (docs/PROTOCOL.md 8.13); anything else closes
      // this connection.
      wire::MessageView view;
      const wire::DecodeResult r =
          wire::decode(frame.payload.data(), frame.payload.size(), wire::kMaxClientPayload,
                       wire::Protocol::kV2Server, view);
      std::string bad;
      if (r.status == wire::DecodeStatus::kError) {
        bad = r.error;
      } else if (r.status != wire::DecodeStatus::kMessage || r.size != frame.payload.size()) {
        bad = "not exactly one whole message (" + std::to_string(frame.payload.size()) + " bytes)";
      } else if (view.type != wire::MessageType::kKeyframeRequest &&
                 view.type != wire::MessageType::kRenditionRequest) {
        bad = std::string("a ") + wire::message_type_name(view.type);
      }
      if (!bad.empty()) {
        TF_WARNING(kComp,
                   "client %" PRIu64
                   " %s: a WebSocket message that is not a valid KEYFRAME_REQUEST or "
                   "RENDITION_REQUEST: %s; dropping it",
                   info_.id, info_.address.c_str(), bad.c_str());
        set_last_error(("bad WebSocket message: " + bad).c_str());
        send_browser_final(ws::encode_close(ws::kClosePolicy,
                                            "only KEYFRAME_REQUEST and RENDITION_REQUEST are read"),
                           RemoveReason::kProtocol);
        return;
      }
      if (phase_ != Phase::kStreaming) return;
      if (view.type == wire::MessageType::kRenditionRequest) {
        on_rendition_request(view.rendition);  // session_rendition.cpp
        return;
      }
      TF_LOGV(kComp, "client %" PRIu64 ": KEYFRAME_REQUEST (WebSocket)", info_.id);
      stream_->request_keyframe(info_.id);
      return;
    }
    default:
      return;  // pong
  }
}

void Session::send_browser_final(std::vector<uint8_t> bytes, RemoveReason reason) {
  const bool admitted =
      phase_ == Phase::kStreaming || phase_ == Phase::kSelecting || phase_ == Phase::kAuthorizing;
  if (!admitted) {
    close(reason, "");
    return;
  }
  enter(Phase::kLeaving);
  select_timer_.cancel();
  final_reason_ = reason;
  if (browser_->framing == browser::Framing::kRequest) {
    browser_->framing = browser::Framing::kResponded;
  }
  const size_t dropped =
      queue_.push_final(browser::raw(std::move(bytes), wire::MessageType::kError));
  for (size_t i = 0; i < dropped; ++i) count_drop();
  queued();
}

}  // namespace tlsframe
