// The WebSocket protocol (RFC 6455) as the browser front needs it: the
// upgrade check (version 13, a well-formed key, same origin), the accept
// key, server frames (unmasked, never fragmented) and a decoder for client
// frames that takes only what the front expects: masked, unfragmented
// close, ping, pong and binary frames of at most kMaxClientFrame bytes.
// Written here rather than taken from a library: the session owns its TLS
// records and socket, and the packaged server libraries (libwebsockets)
// own the socket and TLS themselves. Pure code, fuzzed (tests/fuzz/fuzz_http.cpp).
//
// Threads: none of its own; a decoder is used by one strand.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/http_request.h"

namespace tlsframe::ws {

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Close codes (RFC 6455, 7.4.1) the server sends.
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocol = 1002;
inline constexpr uint16_t kCloseUnsupported = 1003;
inline constexpr uint16_t kClosePolicy = 1008;
inline constexpr uint16_t kCloseTooBig = 1009;
inline constexpr uint16_t kCloseInternal = 1011;

// Largest client frame payload: a control frame's limit (RFC 6455, 5.5),
// ample for a 12-byte KEYFRAME_REQUEST.
inline constexpr size_t kMaxClientFrame = 125;
// Largest server frame header: 2 bytes, then a 64-bit length.
inline constexpr size_t kMaxHeaderSize = 10;

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + RFC GUID)).
std::string accept_key(std::string_view key);

struct UpgradeCheck {
  bool ok = false;
  int http_status = 0;  // !ok: 400 (bad upgrade), 403 (other origin), 426 (version not 13)
  std::string error;    // !ok: for the log and the response
  std::string accept;   // ok: the Sec-WebSocket-Accept value
};
// Whether a GET is a WebSocket upgrade the front accepts: Upgrade
// "websocket", Connection with "upgrade", Sec-WebSocket-Version 13, a key
// that is base64 of 16 bytes, and an Origin equal to https://<Host>
// (browsers always send Origin; a request without one is refused too, so a
// cross-site page can never use a visitor's client certificate).
UpgradeCheck check_upgrade(const http::Request &r);

// A server frame's header for a payload of `size` bytes: FIN set, not masked.
// Returns the header size (2, 4 or 10) written to out.
size_t write_frame_header(uint8_t *out, Opcode op, uint64_t size);
std::vector<uint8_t> frame_header(Opcode op, uint64_t size);
// A whole server frame.
std::vector<uint8_t> encode_frame(Opcode op, const uint8_t *data, size_t size);
// A close frame: the code, then the reason cut to fit 125 bytes (whole UTF-8 characters).
std::vector<uint8_t> encode_close(uint16_t code, std::string_view reason);

// One client frame, unmasked.
struct Frame {
  Opcode op = Opcode::kClose;
  std::vector<uint8_t> payload;  // at most kMaxClientFrame bytes
};

class FrameDecoder {
 public:
  enum class Status { kNeedMore, kFrame, kError };
  struct Result {
    Status status = Status::kNeedMore;
    size_t consumed = 0;      // of the bytes given
    uint16_t close_code = 0;  // kError: what to close with (kCloseProtocol, kCloseTooBig, ...)
    std::string error;        // kError: why
  };
  // Reads at most one frame from data; on kFrame, frame() holds it until the
  // next feed(). After kError every call returns the same error.
  Result feed(const uint8_t *data, size_t size);
  const Frame &frame() const { return frame_; }

 private:
  Result fail(uint16_t code, std::string why);

  std::array<uint8_t, 14> head_{};  // header bytes so far (2 + 8 length + 4 mask at most)
  size_t head_size_ = 0;
  size_t head_needed_ = 2;
  bool have_head_ = false;
  uint64_t length_ = 0;
  std::array<uint8_t, 4> mask_{};
  Frame frame_;
  Result error_;  // set once failed
};

}  // namespace tlsframe::ws
