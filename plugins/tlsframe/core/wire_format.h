// tlsframe wire format, version 1: big-endian, length-prefixed messages sent
// from server to client after the TLS handshake. Pure code: no I/O, no
// allocation in the decoder, total on every input. See docs/PROTOCOL.md.
// MessageReader (below) is the one stateful piece: a read buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tlsframe::wire {

inline constexpr uint8_t kMagic[4] = {'T', 'L', 'S', 'F'};
inline constexpr uint8_t kVersion = 1;
// magic(4) version(1) type(1) reserved(2, zero) payload-length(4)
inline constexpr size_t kHeaderSize = 12;
// pts(8) dts(8) duration(8) flags(4) reserved(4, zero) sequence(8) send-time(8)
inline constexpr size_t kBufferMetaSize = 48;
// Longest ERROR text accepted or produced, in bytes.
inline constexpr size_t kMaxErrorText = 1024;
// Longest CAPS string accepted or produced, in bytes (stream headers included).
inline constexpr size_t kMaxCapsSize = 64u * 1024u;
// Deepest bracket nesting accepted in a CAPS string: ( [ { < each open a level.
// Bounds the recursion of any caps parser fed with it.
inline constexpr int kMaxCapsNesting = 16;
// "No timestamp" on the wire (GST_CLOCK_TIME_NONE has the same value).
inline constexpr uint64_t kNoTime = UINT64_MAX;
// Default maximum payload size a decoder accepts (64 MiB).
inline constexpr size_t kDefaultMaxPayload = 64u * 1024u * 1024u;

enum class MessageType : uint8_t {
  kCaps =
      1,  // payload: caps string (non-empty, <= kMaxCapsSize, no control bytes, bounded nesting)
  kBuffer = 2,  // payload: BufferMeta (48 bytes) then the buffer's bytes (may be empty)
  kEos = 3,     // payload: empty
  kError = 4,   // payload: code (u16) then UTF-8 reason (at most kMaxErrorText bytes)
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
  std::string_view caps;          // kCaps
  BufferMeta meta;                // kBuffer
  const uint8_t *data = nullptr;  // kBuffer: the buffer's bytes
  size_t data_size = 0;           // kBuffer
  uint16_t error_code = 0;        // kError
  std::string_view error_text;    // kError
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
// fewer bytes are given; kError on bad magic, version, type, reserved bits,
// a payload above max_payload, or a size impossible for the type.
DecodeResult parse_header(const uint8_t *bytes, size_t len, size_t max_payload, Header &out);

// The checks a decoder applies to a CAPS payload: non-empty, at most
// kMaxCapsSize bytes, no NUL or control byte, nesting at most
// kMaxCapsNesting. kMessage when acceptable, else kError saying why. A
// sender runs it on what it is about to send, so it never sends caps its
// receivers refuse.
DecodeResult check_caps(std::string_view caps);

// Decode one whole message from the start of bytes. kNeedMore (with size =
// bytes needed) while the message is incomplete; kError on anything malformed.
DecodeResult decode(const uint8_t *bytes, size_t len, size_t max_payload, MessageView &out);

// Encoders. Each returns one complete message.
std::vector<uint8_t> encode_caps(std::string_view caps);
std::vector<uint8_t> encode_eos();
std::vector<uint8_t> encode_error(ErrorCode code,
                                  std::string_view text);  // text truncated to kMaxErrorText
std::vector<uint8_t> encode_buffer(const BufferMeta &meta, const uint8_t *data, size_t size);
// Write header + BufferMeta (kHeaderSize + kBufferMetaSize bytes) for a buffer
// of data_size bytes, so a caller can place the data right after it.
void write_buffer_prefix(uint8_t *out, const BufferMeta &meta, uint32_t data_size);

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
  explicit MessageReader(size_t max_payload, size_t chunk = kReadChunk);

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

  size_t capacity() const;  // bytes allocated for the message being read
  size_t received() const { return filled_; }  // bytes of it received so far

 private:
  size_t max_payload_;
  size_t chunk_;
  std::shared_ptr<std::vector<uint8_t>> buf_;
  size_t filled_ = 0;
  size_t total_ = 0;  // the whole message's size once its header is parsed; 0 before
};

const char *message_type_name(MessageType type);

}  // namespace tlsframe::wire
