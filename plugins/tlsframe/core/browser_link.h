// A browser connection's state and framing (the browser front, ALPN
// http/1.1): the request being read, then either a one-shot response or the
// stream carried as WebSocket messages or as multipart JPEG parts. The
// session keeps one of these and hands every message it writes to frame();
// the stream's messages (serialized once, shared by every client) are not
// copied: a framed buffer is a small header in front of the same data.
// Pure code (no socket); tests/unit/test_browser_link.cpp.
//
// Threads: used on its session's strand only.
#pragma once

#include <cstdint>
#include <vector>

#include "core/http_request.h"
#include "core/message.h"
#include "core/websocket.h"
#include "core/wire_format.h"

namespace tlsframe::browser {

enum class Framing {
  kRequest,    // the request is being read; nothing answered yet
  kResponded,  // a one-shot response (page, JSON, error) is on its way; then close
  kWebSocket,  // 101 sent: caps as text messages, the rest as binary v2 messages
  kMjpeg,      // multipart/x-mixed-replace: each buffer a JPEG part
};

struct Link {
  Framing framing = Framing::kRequest;
  http::RequestParser request;  // kRequest
  ws::FrameDecoder frames;      // kWebSocket: the client's frames
  // A stream route (WebSocket or multipart) held until the client is
  // authorized for its stream: the response that starts it (101, or 200 and
  // the first part's headers) and the framing after it. Until then the
  // connection stays kRequest, so a refusal is an HTTP error response (403).
  std::vector<uint8_t> held_response;
  Framing held_framing = Framing::kRequest;
};

// msg as a connection in framing f carries it (msg itself when framed or
// f has nothing to add). Never nullptr: what f does not carry becomes an
// empty message (nothing written; counted as the type it had).
//   kRequest    ERROR -> the HTTP error response (503, 408, 400, 404, 403, 429)
//   kWebSocket  CAPS -> a text message (the caps string); BUFFER, RENDITION,
//               EOS, ERROR -> a binary message of the v2 bytes; EOS and ERROR
//               then a close frame
//   kMjpeg      BUFFER -> its data, then the next part's boundary and headers
MessagePtr frame(const MessagePtr &msg, Framing f);
// A message sent as it is (an HTTP response, a WebSocket control frame).
MessagePtr raw(std::vector<uint8_t> bytes, wire::MessageType type);

int http_status_for(wire::ErrorCode code);
uint16_t close_code_for(wire::ErrorCode code);

}  // namespace tlsframe::browser
