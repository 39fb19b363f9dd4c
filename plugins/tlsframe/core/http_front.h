// The browser front's routes (ALPN http/1.1 on the sink's port): a parsed
// request and the streams there are -> what to answer. Fixed routes only:
//   /               the streams, each a link (one stream: its viewer at once)
//   /watch/NAME     the viewer page ("/watch/" = the default stream); with a
//                   WebSocket upgrade, the stream itself (core/websocket.h)
//   /streams.json   names, caps and viewer counts (STREAM_LIST's data), and
//                   each stream's renditions with their viewers
//   /mjpeg/NAME     a JPEG stream as multipart/x-mixed-replace, for an <img>
// Anything else is 404, a method other than GET or HEAD 405. Every response
// carries Content-Security-Policy, X-Content-Type-Options: nosniff and
// Cache-Control: no-store. Pure code: no socket, no stream; unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/http_request.h"
#include "core/wire_v2.h"

namespace tlsframe::http {

enum class Action {
  kRespond,    // send `response`, then close_notify and close
  kWebSocket,  // send `response` (101), then the stream as WebSocket messages
  kMjpeg,      // send `response` (200 and the first part's headers), then the JPEG parts
};

struct Route {
  Action action = Action::kRespond;
  int status = 200;
  std::string stream;             // kWebSocket, kMjpeg: the stream's name ("" = the default)
  std::vector<uint8_t> response;  // what is sent first (see Action)
  std::string error;              // status >= 400: why, for the log
};

// The answer to a request, given the streams served now.
Route route(const Request &r, const std::vector<wire::StreamSummary> &streams);
// A complete error response (status 400, 403, 404, 405, 408, 426, 431, 503, ...).
std::vector<uint8_t> error_response(int status, std::string_view text, bool head = false);

// /streams.json's body.
std::string streams_json(const std::vector<wire::StreamSummary> &streams);
// Whether a caps summary (StreamSummary::caps) is a JPEG stream.
bool is_jpeg(std::string_view caps_summary);

// multipart/x-mixed-replace: each JPEG is followed at once by the next
// part's boundary and headers, because Chromium shows a part only when the
// next part's headers arrive.
inline constexpr std::string_view kMjpegBoundary = "tlsframe-jpeg";
// What follows each JPEG: CRLF, the boundary and the next part's headers.
const std::string &mjpeg_part_separator();

// The Content-Security-Policy every response carries (the viewer's script
// and style allowed by their SHA-256, nothing else).
const std::string &content_security_policy();

}  // namespace tlsframe::http
