// Framing of stream messages for browser connections.
#include "core/browser_link.h"

#include <string>

#include "core/http_front.h"

namespace tlsframe::browser {
namespace {

uint16_t get_be16(const uint8_t *p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

MessagePtr empty_like(const MessagePtr &msg) {
  auto m = std::make_shared<Message>();
  m->type = msg->type;
  m->framed = true;
  return m;
}

// An ERROR message's code and text (what encode_error wrote).
void read_error(const Message &msg, wire::ErrorCode &code, std::string &text) {
  code = wire::ErrorCode::kUnspecified;
  text.clear();
  if (msg.bytes.size() < wire::kHeaderSize + 2) return;
  code = static_cast<wire::ErrorCode>(get_be16(&msg.bytes[wire::kHeaderSize]));
  text.assign(msg.bytes.begin() + wire::kHeaderSize + 2, msg.bytes.end());
}

}  // namespace

int http_status_for(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::kServerFull:
    case wire::ErrorCode::kShuttingDown:
      return 503;
    case wire::ErrorCode::kTimeout:
      return 408;
    case wire::ErrorCode::kNoSuchStream:
      return 404;
    case wire::ErrorCode::kForbidden:
    case wire::ErrorCode::kRevoked:
      return 403;
    case wire::ErrorCode::kRateLimited:
      return 429;
    default:
      return 400;
  }
}

uint16_t close_code_for(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::kShuttingDown:
      return ws::kCloseGoingAway;
    case wire::ErrorCode::kProtocol:
      return ws::kCloseProtocol;
    case wire::ErrorCode::kServerFull:
      return 1013;  // try again later
    default:
      return ws::kClosePolicy;
  }
}

MessagePtr raw(std::vector<uint8_t> bytes, wire::MessageType type) {
  auto m = std::make_shared<Message>();
  m->type = type;
  m->bytes = std::move(bytes);
  m->framed = true;
  return m;
}

MessagePtr frame(const MessagePtr &msg, Framing f) {
  if (msg->framed) return msg;
  switch (f) {
    case Framing::kRequest: {
      if (msg->type != wire::MessageType::kError) return empty_like(msg);
      wire::ErrorCode code;
      std::string text;
      read_error(*msg, code, text);
      auto m = raw(http::error_response(http_status_for(code), text), msg->type);
      return m;
    }
    case Framing::kResponded:
      return empty_like(msg);
    case Framing::kWebSocket: {
      auto m = std::make_shared<Message>();
      m->type = msg->type;
      m->framed = true;
      switch (msg->type) {
        case wire::MessageType::kCaps: {
          const size_t n = msg->bytes.size() - wire::kHeaderSize;
          m->bytes = ws::encode_frame(ws::Opcode::kText, msg->bytes.data() + wire::kHeaderSize, n);
          return m;
        }
        case wire::MessageType::kBuffer:
          // The shared v2 message, behind a frame header: no copy of the data.
          m->bytes = ws::frame_header(ws::Opcode::kBinary, msg->wire_size());
          if (msg->payload) {
            m->bytes.insert(m->bytes.end(), msg->bytes.begin(), msg->bytes.end());
            m->payload = msg->payload;
          } else {
            m->payload = msg->bytes.data();
          }
          m->payload_size = msg->payload ? msg->payload_size : msg->bytes.size();
          m->payload_owner = msg;
          return m;
        case wire::MessageType::kRendition:
          // The browser's notice (Session::browser_rendition_notice): the v2 bytes.
          m->bytes = ws::encode_frame(ws::Opcode::kBinary, msg->bytes.data(), msg->bytes.size());
          return m;
        case wire::MessageType::kEos:
        case wire::MessageType::kError: {
          m->bytes = ws::encode_frame(ws::Opcode::kBinary, msg->bytes.data(), msg->bytes.size());
          std::vector<uint8_t> close;
          if (msg->type == wire::MessageType::kEos) {
            close = ws::encode_close(ws::kCloseNormal, "end of stream");
          } else {
            wire::ErrorCode code;
            std::string text;
            read_error(*msg, code, text);
            close = ws::encode_close(close_code_for(code), text);
          }
          m->bytes.insert(m->bytes.end(), close.begin(), close.end());
          return m;
        }
        default:
          return empty_like(msg);  // WELCOME, STREAM_LIST: not for browsers
      }
    }
    case Framing::kMjpeg: {
      if (msg->type != wire::MessageType::kBuffer) return empty_like(msg);
      auto m = std::make_shared<Message>();
      m->type = msg->type;
      m->framed = true;
      const size_t prefix = wire::kHeaderSize + wire::kBufferMetaSize;
      if (msg->payload) {
        m->payload = msg->payload;
        m->payload_size = msg->payload_size;
      } else if (msg->bytes.size() >= prefix) {
        m->payload = msg->bytes.data() + prefix;
        m->payload_size = msg->bytes.size() - prefix;
      }
      m->payload_owner = msg;
      const std::string &sep = http::mjpeg_part_separator();
      m->trailer.assign(sep.begin(), sep.end());
      return m;
    }
  }
  return msg;
}

}  // namespace tlsframe::browser
