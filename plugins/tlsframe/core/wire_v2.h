// tlsframe protocol version 2: ALPN selection, the v2-only messages (HELLO,
// WELCOME, KEYFRAME_REQUEST, LIST_STREAMS, STREAM_LIST, RENDITION_REQUEST,
// RENDITION) and the limits on
// what a client may send. Pure code, like core/wire_format.h, which decodes
// them (decode(..., Protocol::kV2Client / kV2Server, ...)). See
// docs/PROTOCOL.md, "Version 2".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/wire_fields.h"
#include "core/wire_format.h"

namespace tlsframe::wire {

// ---------------------------------------------------------------------------
// Version by ALPN

// The ALPN protocol a v2 client offers; a client that offers no ALPN is a v1 client.
inline constexpr std::string_view kAlpnV2 = "tlsframe/2";
// Reserved for the browser front (HTTPS and WebSocket on the same port).
inline constexpr std::string_view kAlpnHttp = "http/1.1";
// A client's ALPN offer in wire form (length-prefixed list), as
// SSL_set_alpn_protos() takes it: just "tlsframe/2".
inline constexpr uint8_t kAlpnOfferV2[] = {10, 't', 'l', 's', 'f', 'r', 'a', 'm', 'e', '/', '2'};

enum class AlpnChoice {
  kV2,         // select "tlsframe/2"
  kHttp,       // select "http/1.1" (only when the server enables its browser front)
  kNoOverlap,  // nothing acceptable offered (or a malformed list): refuse the handshake
               // with the no_application_protocol alert
};

struct AlpnSelection {
  AlpnChoice choice = AlpnChoice::kNoOverlap;
  const uint8_t *protocol = nullptr;  // the chosen name, pointing into `offered`
  uint8_t protocol_size = 0;
};

// The server's choice from a client's ALPN offer (the list OpenSSL hands an
// ALPN select callback; only called when the client offered ALPN at all, a
// client without ALPN being a v1 client). "tlsframe/2" wins over "http/1.1";
// "h2" and anything else is never selected.
AlpnSelection select_alpn(const uint8_t *offered, size_t size, bool http_enabled);

// ---------------------------------------------------------------------------
// Client -> server limits (docs/PROTOCOL.md, "Rate limit")

// A client may send kClientMessageRate messages per second on average, with
// bursts of up to kClientMessageBurst; beyond that the server sends ERROR
// RATE_LIMITED and closes (core/rate_limiter.h implements the bucket).
inline constexpr uint32_t kClientMessageRate = 50;
inline constexpr uint32_t kClientMessageBurst = 100;

// ---------------------------------------------------------------------------
// Encoders (version byte 2). Those taking fields return an empty vector when
// the message would not decode (bad key or text, duplicate key, missing or
// invalid required field, over a limit): an encoder never produces a message
// its own decoder refuses.

// HELLO: `stream` (required: "" = the default stream, else valid_stream_name()),
// `rendition` (optional: a valid_rendition_name() or kRenditionAuto) and any
// other fields, in the order given.
std::vector<uint8_t> encode_hello(const std::vector<Field> &fields);
// WELCOME: `stream` (required: the name served, "" when the default stream
// has none), `server` (required: text of at most kMaxServerText bytes),
// `keyframe-interval-ms` (optional, canonical decimal), `rendition`
// (optional: the rendition served first, a valid_rendition_name()),
// `renditions` (optional: every rendition, rendition_list() form) and any others.
std::vector<uint8_t> encode_welcome(const std::vector<Field> &fields);
// WELCOME with the known fields; keyframe_interval_ms 0 = not sent.
std::vector<uint8_t> encode_welcome(std::string_view stream, std::string_view server,
                                    uint32_t keyframe_interval_ms);
std::vector<uint8_t> encode_keyframe_request();
// RENDITION_REQUEST: `rendition` = a valid_rendition_name() or kRenditionAuto.
std::vector<uint8_t> encode_rendition_request(std::string_view rendition);
// RENDITION: `rendition` (a valid_rendition_name()) and `reason` (text of at
// most kMaxRenditionReason bytes; omitted when empty).
std::vector<uint8_t> encode_rendition(std::string_view rendition, std::string_view reason);
// The same from raw fields (`rendition` and any others, in order); empty when invalid.
std::vector<uint8_t> encode_rendition_request(const std::vector<Field> &fields);
std::vector<uint8_t> encode_rendition(const std::vector<Field> &fields);
std::vector<uint8_t> encode_list_streams();

// One rendition of a listed stream: its name and viewers.
struct RenditionSummary {
  std::string name;  // valid_rendition_name()
  uint32_t viewers = 0;
};
// One stream as the server lists it.
struct StreamSummary {
  std::string name;  // valid_stream_name(), or "" for an unnamed default stream
  std::string caps;  // short summary, e.g. "video/x-h264 1280x720 30/1"
  uint32_t viewers = 0;
  // Its renditions, highest rate first (empty: one encoding). Not in
  // STREAM_LIST; the browser front's /streams.json lists them.
  std::vector<RenditionSummary> renditions = {};
};
// STREAM_LIST from summaries; always a valid message: caps cut to
// kMaxCapsSummary bytes (whole UTF-8 characters), bytes that are not valid
// text replaced by '?', entries with an invalid name left out, and the list
// cut after kMaxStreamListEntries entries or kMaxStreamListPayload bytes.
std::vector<uint8_t> encode_stream_list(const std::vector<StreamSummary> &streams);
// STREAM_LIST from raw entries (each `name`, `caps`, `viewers` and any
// others, in order); empty when invalid or over a limit.
std::vector<uint8_t> encode_stream_list_entries(const std::vector<std::vector<Field>> &entries);

// Longest `reason` in a RENDITION, in bytes.
inline constexpr size_t kMaxRenditionReason = 256;

// ---------------------------------------------------------------------------
// Reading what decode() accepted

// The names of a WELCOME's `renditions` field ("720p,360p": a comma-separated
// list of valid_rendition_name()s, best first); empty when absent or invalid.
std::vector<std::string> rendition_list(std::string_view text);
// The `renditions` value for names (each a valid_rendition_name()).
std::string join_rendition_list(const std::vector<std::string> &names);

// One STREAM_LIST entry; views into the message.
struct StreamEntry {
  std::string_view name;  // "" = the default stream, which has no name
  std::string_view caps;  // caps summary (may be empty: no caps yet)
  uint32_t viewers = 0;
  FieldBlock fields;  // all of the entry's fields, unknown ones included
};
// Iteration over a decoded STREAM_LIST (MessageView::streams): start with
// offset 0; false after the last entry.
bool next_stream(const StreamListView &list, size_t &offset, StreamEntry &out);

// The reason text of ERROR NO_SUCH_STREAM: the name asked for and the names
// there are, cut at a whole name to fit kMaxErrorText bytes.
std::string no_such_stream_reason(std::string_view requested,
                                  const std::vector<std::string> &names);

// The reason texts of ERROR FORBIDDEN and REVOKED (docs/PROTOCOL.md 8.11):
// they name the stream ("" = the default stream), never the rules.
std::string forbidden_reason(std::string_view stream);
inline constexpr const char *kRevokedReason = "certificate revoked";

// ---------------------------------------------------------------------------
// Payload checks decode() applies (payload = the bytes after the header).
// Each fills the view's fields for its type when the payload is acceptable.
Verdict check_hello(const uint8_t *payload, size_t size, MessageView &out);
Verdict check_welcome(const uint8_t *payload, size_t size, MessageView &out);
Verdict check_stream_list(const uint8_t *payload, size_t size, StreamListView &out);
Verdict check_rendition_request(const uint8_t *payload, size_t size, MessageView &out);
Verdict check_rendition(const uint8_t *payload, size_t size, MessageView &out);

}  // namespace tlsframe::wire
