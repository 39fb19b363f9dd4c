// tlsframe wire format, versions 1 and 2: big-endian, length-prefixed
// messages after the TLS handshake. Version 1 flows server -> client only;
// version 2 (ALPN "tlsframe/2") adds small client -> server requests and
// their answers (core/wire_v2.h). Pure code: no I/O, no allocation in the
// decoder, total on every input. See docs/PROTOCOL.md.
// MessageReader (below) is the one stateful piece: a read buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/wire_fields.h"

namespace tlsframe::wire {

inline constexpr uint8_t kMagic[4] = {'T', 'L', 'S', 'F'};
inline constexpr uint8_t kVersion = 1;   // version 1 (no ALPN)
inline constexpr uint8_t kVersion2 = 2;  // version 2 (ALPN "tlsframe/2")

// The version byte an encoder writes. Every message on a v2 connection, in
// both directions, carries 2; a v1 connection only ever sees 1.
enum class Version : uint8_t { kV1 = kVersion, kV2 = kVersion2 };

// What a decoder reads: the version it expects and which side sent the
// bytes. Direction is part of validity: a client decoder refuses
// client -> server types and a server decoder server -> client types.
enum class Protocol : uint8_t {
  kV1Client,  // a v1 client reading its server: version 1, types 1-4
  kV2Client,  // a v2 client reading its server: version 2, types 1-4, 6, 9, 11
  kV2Server,  // a v2 server reading a client: version 2, types 5, 7, 8, 10
};
// magic(4) version(1) type(1) reserved(2, zero) payload-length(4)
inline constexpr size_t kHeaderSize = 12;
// pts(8) dts(8) duration(8) flags(4) reserved(4, zero) sequence(8) send-time(8)
inline constexpr size_t kBufferMetaSize = 48;
// Longest ERROR text accepted or produced, in bytes.
inline constexpr size_t kMaxErrorText = 1024;
// Longest CAPS string accepted or produced, in bytes (stream headers included).
inline constexpr size_t kMaxCapsSize = 64u * 1024u;
// Deepest bracket nesting accepted in a CAPS string: ( [ { < each open a level.
// Bounds the work of any caps parser fed with it: gst_caps_from_string() backtracks
// over unterminated nested lists, measured on GStreamer 1.22 at 0.02 s for depth 12,
// 0.05 s for 14 and 1 s for 16 (a 106-byte string); depth 8 takes under 1 ms. The real
// caps of the fuzz seed corpus (JPEG, H.264, raw, Opus stream headers) nest 1 deep.
inline constexpr int kMaxCapsNesting = 8;
// "No timestamp" on the wire (GST_CLOCK_TIME_NONE has the same value).
inline constexpr uint64_t kNoTime = UINT64_MAX;
// Default maximum payload size a decoder accepts (64 MiB).
inline constexpr size_t kDefaultMaxPayload = 64u * 1024u * 1024u;

// Longest payload of a client -> server message; a server-side decoder is
// made with this maximum (docs/PROTOCOL.md, "Limits").
inline constexpr size_t kMaxClientPayload = 4096;
// Longest STREAM_LIST payload and most entries in it.
inline constexpr size_t kMaxStreamListPayload = size_t{256} * 1024;
inline constexpr size_t kMaxStreamListEntries = 1024;
// Longest caps summary in a STREAM_LIST entry, in bytes.
inline constexpr size_t kMaxCapsSummary = 256;
// Longest `server` value in a WELCOME, in bytes.
inline constexpr size_t kMaxServerText = 256;

enum class MessageType : uint8_t {
  // server -> client, v1 and v2
  kCaps =
      1,  // payload: caps string (non-empty, <= kMaxCapsSize, no control bytes, bounded nesting)
  kBuffer = 2,  // payload: BufferMeta (48 bytes) then the buffer's bytes (may be empty)
  kEos = 3,     // payload: empty
  kError = 4,   // payload: code (u16) then UTF-8 reason (at most kMaxErrorText bytes)
  // v2 only
  kHello = 5,            // client -> server: field block (`stream` required)
  kWelcome = 6,          // server -> client, the answer to HELLO: field block
  kKeyframeRequest = 7,  // client -> server: empty
  kListStreams = 8,      // client -> server: empty
  kStreamList = 9,       // server -> client: u16 count, then count (u16 length, field block)
  kRenditionRequest = 10,  // client -> server: field block (`rendition` required: a name or "auto")
  kRendition = 11,         // server -> client: field block (`rendition` required), just before
                           // the CAPS of the rendition it now gets
};

// Buffer flags carried on the wire (a subset of GstBufferFlags, re-numbered
// so the wire does not depend on GStreamer's values).
enum BufferFlag : uint32_t {
  kFlagDeltaUnit = 1u << 0,
  kFlagHeader = 1u << 1,
  kFlagDiscont = 1u << 2,
  kFlagGap = 1u << 3,
  kFlagDroppable = 1u << 4,
  kFlagMarker = 1u << 5,
  kFlagCorrupted = 1u << 6,
  kKnownFlags = (1u << 7) - 1,
};

// Error codes in an ERROR message.
enum class ErrorCode : uint16_t {
  kUnspecified = 0,
  kServerFull = 1,    // max-clients reached
  kShuttingDown = 2,  // server is stopping
  kProtocol = 3,      // the client broke the protocol
  kTimeout = 4,       // the client made no progress
  kNoSuchStream = 5,  // v2: HELLO named a stream the server does not have (text lists those it has)
  kForbidden = 6,     // the client may not watch this stream (authorized-clients, accept-client)
  kRevoked = 7,       // the client's certificate was revoked (crl-file reloaded while it watched)
  kRateLimited = 8,  // v2: the client sent messages faster than the server's limit
};

struct BufferMeta {
  uint64_t pts = kNoTime;       // presentation timestamp, ns
  uint64_t dts = kNoTime;       // decoding timestamp, ns
  uint64_t duration = kNoTime;  // ns
  uint32_t flags = 0;           // BufferFlag bits
  uint64_t sequence = 0;        // per-stream counter set by the server
  uint64_t send_time_ns = 0;    // server's CLOCK_REALTIME at publish, ns (latency measurement)
};

struct Header {
  MessageType type = MessageType::kCaps;
  uint32_t payload_size = 0;
};

// A decoded message; views point into the decoder's input.
struct MessageView {
  MessageType type = MessageType::kCaps;
  std::string_view caps;              // kCaps
  BufferMeta meta;                    // kBuffer
  const uint8_t *data = nullptr;      // kBuffer: the buffer's bytes
  size_t data_size = 0;               // kBuffer
  uint16_t error_code = 0;            // kError
  std::string_view error_text;        // kError
  FieldBlock fields;                  // kHello, kWelcome: all fields, unknown ones included
  std::string_view stream;            // kHello: stream asked for ("" = default); kWelcome: served
  std::string_view server;            // kWelcome: the server's version text
  uint32_t keyframe_interval_ms = 0;  // kWelcome: 0 when the field is absent
  StreamListView streams;             // kStreamList: the entries (read with next_stream())
  // kHello: the rendition asked for ("" = not stated, "auto" = the server's choice);
  // kWelcome: the rendition served first ("" = the stream has none);
  // kRenditionRequest: a name or "auto"; kRendition: the name now served.
  std::string_view rendition;
  std::string_view reason;  // kRendition: why it changed (may be empty)
};

enum class DecodeStatus { kMessage, kNeedMore, kError };

struct DecodeResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  // kMessage: bytes of the whole message (header + payload) consumed.
  // kNeedMore: total bytes needed before calling again (>= kHeaderSize), when known.
  size_t size = 0;
  std::string error;  // kError: what is wrong, for a person
};

// Parse and validate a header from the first kHeaderSize bytes. kNeedMore if
// fewer bytes are given; kError on bad magic, a version other than the
// protocol's, a type the protocol does not allow from that sender, reserved
// bits, a payload above max_payload, or a size impossible for the type.
DecodeResult parse_header(const uint8_t *bytes, size_t len, size_t max_payload, Protocol protocol,
                          Header &out);
// Version 1, as a client reads it (Protocol::kV1Client).
DecodeResult parse_header(const uint8_t *bytes, size_t len, size_t max_payload, Header &out);

// The checks a decoder applies to a CAPS payload: non-empty, at most
// kMaxCapsSize bytes, no NUL or control byte, nesting at most
// kMaxCapsNesting. kMessage when acceptable, else kError saying why. A
// sender runs it on what it is about to send, so it never sends caps its
// receivers refuse.
DecodeResult check_caps(std::string_view caps);

// Decode one whole message from the start of bytes. kNeedMore (with size =
// bytes needed) while the message is incomplete; kError on anything malformed.
DecodeResult decode(const uint8_t *bytes, size_t len, size_t max_payload, Protocol protocol,
                    MessageView &out);
// Version 1, as a client reads it (Protocol::kV1Client).
DecodeResult decode(const uint8_t *bytes, size_t len, size_t max_payload, MessageView &out);

// The version a protocol's messages carry.
Version protocol_version(Protocol protocol);

// Encoders of the server -> client messages of both versions; `version` is
// the connection's (v2 payloads are v1's). Each returns one complete message.
// The v2-only messages are encoded by core/wire_v2.h.
std::vector<uint8_t> encode_caps(std::string_view caps, Version version = Version::kV1);
std::vector<uint8_t> encode_eos(Version version = Version::kV1);
std::vector<uint8_t> encode_error(ErrorCode code, std::string_view text,
                                  Version version = Version::kV1);  // text cut to kMaxErrorText
std::vector<uint8_t> encode_buffer(const BufferMeta &meta, const uint8_t *data, size_t size,
                                   Version version = Version::kV1);
// Write header + BufferMeta (kHeaderSize + kBufferMetaSize bytes) for a buffer
// of data_size bytes, so a caller can place the data right after it.
void write_buffer_prefix(uint8_t *out, const BufferMeta &meta, uint32_t data_size,
                         Version version = Version::kV1);
// Write a header (kHeaderSize bytes) for any type; for encoders of core/wire_v2.
void write_header(uint8_t *out, MessageType type, uint32_t payload_size, Version version);

// Bytes of payload a MessageReader asks for per read (and so the most it
// allocates ahead of the bytes that actually arrived).
inline constexpr size_t kReadChunk = size_t{256} * 1024;

// Reads a stream of messages one at a time: the receiver's read buffer. Its
// storage grows with the bytes that arrived, never with the length a header
// announces, so a peer that announces a large message and then stalls costs
// at most one chunk beyond what it sent. No I/O: the caller reads into
// prepare() and reports with commit(). Never throws.
class MessageReader {
 public:
  // Reads version 1 as a client (Protocol::kV1Client).
  explicit MessageReader(size_t max_payload, size_t chunk = kReadChunk);
  // Reads `protocol`; headers are checked as parse_header(..., protocol, ...).
  MessageReader(Protocol protocol, size_t max_payload, size_t chunk = kReadChunk);

  struct Space {
    uint8_t *data = nullptr;
    size_t size = 0;  // 0 = no memory for it (allocation failed)
  };
  // Where the next read goes and how many bytes fit there: the rest of the
  // header first, then up to `chunk` bytes of payload, never past the end of
  // the message. Memory is added only once the previous space is filled.
  Space prepare();
  // n bytes (at most prepare().size) were written at prepare().data.
  // kNeedMore: prepare() and read again. kMessage: take() the whole message
  // (size bytes). kError: the header is invalid (error says why).
  DecodeResult commit(size_t n);
  // After kMessage: the message, header included (validate it with
  // decode()); the reader then starts on the next message.
  std::shared_ptr<std::vector<uint8_t>> take();

  size_t capacity() const;                     // bytes allocated for the message being read
  size_t received() const { return filled_; }  // bytes of it received so far

 private:
  Protocol protocol_ = Protocol::kV1Client;
  size_t max_payload_;
  size_t chunk_;
  std::shared_ptr<std::vector<uint8_t>> buf_;
  size_t filled_ = 0;
  size_t total_ = 0;  // the whole message's size once its header is parsed; 0 before
};

const char *message_type_name(MessageType type);
const char *protocol_name(Protocol protocol);

}  // namespace tlsframe::wire
