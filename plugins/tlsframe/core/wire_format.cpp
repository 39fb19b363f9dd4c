// tlsframe wire format, versions 1 and 2. Every field is written and read one byte
// at a time, most significant byte first, so the layout never depends on the
// host's endianness, padding or alignment.
#include "core/wire_format.h"

#include <algorithm>
#include <cassert>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "core/wire_v2.h"

namespace tlsframe::wire {
namespace {

// Header field offsets.
constexpr size_t kOffVersion = 4;
constexpr size_t kOffType = 5;
constexpr size_t kOffReserved = 6;
constexpr size_t kOffPayloadSize = 8;

// BufferMeta field offsets, relative to the start of the payload.
constexpr size_t kOffPts = 0;
constexpr size_t kOffDts = 8;
constexpr size_t kOffDuration = 16;
constexpr size_t kOffFlags = 24;
constexpr size_t kOffMetaReserved = 28;
constexpr size_t kOffSequence = 32;
constexpr size_t kOffSendTime = 40;

constexpr size_t kErrorCodeSize = 2;
constexpr size_t kStreamCountSize = 2;
constexpr size_t kMaxErrorPayload = kErrorCodeSize + kMaxErrorText;
// Largest payload whose total message size still fits in size_t.
constexpr size_t kMaxRepresentablePayload = SIZE_MAX - kHeaderSize;

static_assert(kOffSendTime + 8 == kBufferMetaSize, "BufferMeta layout and size disagree");
static_assert(kOffPayloadSize + 4 == kHeaderSize, "header layout and size disagree");

void put_u16(uint8_t *p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void put_u32(uint8_t *p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

void put_u64(uint8_t *p, uint64_t v) {
  put_u32(p, static_cast<uint32_t>(v >> 32));
  put_u32(p + 4, static_cast<uint32_t>(v));
}

uint16_t get_u16(const uint8_t *p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t get_u32(const uint8_t *p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

uint64_t get_u64(const uint8_t *p) {
  return (static_cast<uint64_t>(get_u32(p)) << 32) | get_u32(p + 4);
}

void put_header(uint8_t *p, MessageType type, uint32_t payload_size,
                Version version = Version::kV1) {
  for (size_t i = 0; i < sizeof kMagic; ++i) p[i] = kMagic[i];
  p[kOffVersion] = static_cast<uint8_t>(version);
  p[kOffType] = static_cast<uint8_t>(type);
  put_u16(p + kOffReserved, 0);
  put_u32(p + kOffPayloadSize, payload_size);
}

DecodeResult need(size_t total) {
  DecodeResult r;
  r.status = DecodeStatus::kNeedMore;
  r.size = total;
  return r;
}

#if defined(__GNUC__)
#define TLSF_PRINTF_FORMAT(fmt_index, first_arg) \
  __attribute__((format(printf, fmt_index, first_arg)))
#else
#define TLSF_PRINTF_FORMAT(fmt_index, first_arg)
#endif

// Formats the error text into a stack buffer first. Building the std::string
// is the only allocation on any decoder path; if it fails the result is still
// an error, only without its explanation, so the decoder never throws.
DecodeResult fail(const char *fmt, ...) TLSF_PRINTF_FORMAT(1, 2);

DecodeResult fail(const char *fmt, ...) {
  char text[192];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  DecodeResult r;
  r.status = DecodeStatus::kError;
  try {
    r.error = text;
  } catch (...) {
    r.error.clear();
  }
  return r;
}

bool is_v1_type(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kCaps) &&
         type <= static_cast<uint8_t>(MessageType::kError);
}

bool is_v2_type(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kCaps) &&
         type <= static_cast<uint8_t>(MessageType::kRendition);
}

// Which side sends a v2 type.
bool sent_by_client(MessageType type) {
  return type == MessageType::kHello || type == MessageType::kKeyframeRequest ||
         type == MessageType::kListStreams || type == MessageType::kRenditionRequest;
}

// kMessage when `protocol` accepts type byte `type`, else kError saying why.
DecodeResult check_type(uint8_t type, Protocol protocol) {
  DecodeResult ok;
  ok.status = DecodeStatus::kMessage;
  if (protocol == Protocol::kV1Client) {
    if (!is_v1_type(type)) return fail("unknown message type %u", unsigned{type});
    return ok;
  }
  if (!is_v2_type(type)) return fail("unknown message type %u", unsigned{type});
  const auto t = static_cast<MessageType>(type);
  const bool from_client = sent_by_client(t);
  if (protocol == Protocol::kV2Client && from_client)
    return fail("message type %u (%s) is sent by clients, not by a server", unsigned{type},
                message_type_name(t));
  if (protocol == Protocol::kV2Server && !from_client)
    return fail("message type %u (%s) is sent by servers, not by a client", unsigned{type},
                message_type_name(t));
  return ok;
}

// Size rules that depend only on the type; the payload itself is checked in decode().
DecodeResult check_payload_size(MessageType type, uint32_t size) {
  switch (type) {
    case MessageType::kCaps:
      if (size == 0) return fail("CAPS message has an empty payload (a caps string is required)");
      if (size > kMaxCapsSize)
        return fail("CAPS string of %" PRIu32 " bytes exceeds the maximum of %zu", size,
                    kMaxCapsSize);
      break;
    case MessageType::kBuffer:
      if (size < kBufferMetaSize)
        return fail("BUFFER payload of %" PRIu32 " bytes is shorter than its %zu-byte metadata",
                    size, kBufferMetaSize);
      break;
    case MessageType::kEos:
      if (size != 0)
        return fail("EOS message carries a %" PRIu32 "-byte payload (expected none)", size);
      break;
    case MessageType::kError:
      if (size < kErrorCodeSize)
        return fail("ERROR payload of %" PRIu32 " bytes is shorter than its %zu-byte code", size,
                    kErrorCodeSize);
      if (size > kMaxErrorPayload)
        return fail("ERROR payload of %" PRIu32
                    " bytes exceeds the maximum of %zu (code plus %zu bytes of text)",
                    size, kMaxErrorPayload, kMaxErrorText);
      break;
    case MessageType::kHello:
    case MessageType::kWelcome:
      if (size == 0)
        return fail("%s message has an empty payload (its `stream` field is required)",
                    type == MessageType::kHello ? "HELLO" : "WELCOME");
      if (size > kMaxFieldBlock)
        return fail("%s payload of %" PRIu32 " bytes exceeds the maximum of %zu",
                    type == MessageType::kHello ? "HELLO" : "WELCOME", size, kMaxFieldBlock);
      break;
    case MessageType::kRenditionRequest:
    case MessageType::kRendition:
      if (size == 0)
        return fail("%s message has an empty payload (its `rendition` field is required)",
                    message_type_name(type));
      if (size > kMaxFieldBlock)
        return fail("%s payload of %" PRIu32 " bytes exceeds the maximum of %zu",
                    message_type_name(type), size, kMaxFieldBlock);
      break;
    case MessageType::kKeyframeRequest:
    case MessageType::kListStreams:
      if (size != 0)
        return fail("%s message carries a %" PRIu32 "-byte payload (expected none)",
                    type == MessageType::kKeyframeRequest ? "KEYFRAME_REQUEST" : "LIST_STREAMS",
                    size);
      break;
    case MessageType::kStreamList:
      if (size < kStreamCountSize)
        return fail("STREAM_LIST payload of %" PRIu32 " bytes is shorter than its %zu-byte count",
                    size, kStreamCountSize);
      if (size > kMaxStreamListPayload)
        return fail("STREAM_LIST payload of %" PRIu32 " bytes exceeds the maximum of %zu", size,
                    kMaxStreamListPayload);
      break;
  }
  DecodeResult ok;
  ok.status = DecodeStatus::kMessage;
  return ok;
}

// Cuts text to at most max bytes without splitting a UTF-8 sequence: if the
// cut lands on a continuation byte (10xxxxxx), it moves back to the lead byte.
std::string_view truncate_utf8(std::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

}  // namespace

Version protocol_version(Protocol protocol) {
  return protocol == Protocol::kV1Client ? Version::kV1 : Version::kV2;
}

DecodeResult parse_header(const uint8_t *bytes, size_t len, size_t max_payload, Header &out) {
  return parse_header(bytes, len, max_payload, Protocol::kV1Client, out);
}

DecodeResult parse_header(const uint8_t *bytes, size_t len, size_t max_payload, Protocol protocol,
                          Header &out) {
  if (bytes == nullptr) {
    if (len != 0) return fail("no input buffer (null pointer with a length of %zu)", len);
    return need(kHeaderSize);
  }
  // Fixed bytes are checked as soon as they arrive, so a peer that is not
  // speaking tlsframe is rejected on its first wrong byte.
  const size_t have = len < kHeaderSize ? len : kHeaderSize;
  for (size_t i = 0; i < sizeof kMagic && i < have; ++i) {
    if (bytes[i] != kMagic[i]) return fail("bad magic (not a tlsframe stream)");
  }
  const auto version = static_cast<uint8_t>(protocol_version(protocol));
  if (have > kOffVersion && bytes[kOffVersion] != version)
    return fail("unsupported protocol version %u (expected %u)", unsigned{bytes[kOffVersion]},
                unsigned{version});
  if (have > kOffType) {
    DecodeResult t = check_type(bytes[kOffType], protocol);
    if (t.status != DecodeStatus::kMessage) return t;
  }
  if ((have > kOffReserved && bytes[kOffReserved] != 0) ||
      (have > kOffReserved + 1 && bytes[kOffReserved + 1] != 0))
    return fail("reserved header field is not zero");
  if (have < kHeaderSize) return need(kHeaderSize);

  const auto type = static_cast<MessageType>(bytes[kOffType]);
  const uint32_t payload_size = get_u32(bytes + kOffPayloadSize);
  const size_t limit =
      max_payload < kMaxRepresentablePayload ? max_payload : kMaxRepresentablePayload;
  if (payload_size > limit)
    return fail("message payload of %" PRIu32 " bytes exceeds the maximum of %zu", payload_size,
                limit);
  DecodeResult r = check_payload_size(type, payload_size);
  if (r.status != DecodeStatus::kMessage) return r;

  out.type = type;
  out.payload_size = payload_size;
  r.size = kHeaderSize + payload_size;
  return r;
}

DecodeResult check_caps(std::string_view caps) {
  if (caps.size() > UINT32_MAX)
    return fail("CAPS string of %zu bytes exceeds the maximum of %zu", caps.size(), kMaxCapsSize);
  DecodeResult r = check_payload_size(MessageType::kCaps, static_cast<uint32_t>(caps.size()));
  if (r.status != DecodeStatus::kMessage) return r;
  const auto *payload = reinterpret_cast<const uint8_t *>(caps.data());
  const void *nul = std::memchr(payload, 0, caps.size());
  if (nul != nullptr)
    return fail("CAPS string contains a NUL byte at offset %zu",
                static_cast<size_t>(static_cast<const uint8_t *>(nul) - payload));
  int depth = 0;
  for (size_t i = 0; i < caps.size(); ++i) {
    const uint8_t c = payload[i];
    if (c < 0x20 || c == 0x7f)
      return fail("CAPS string contains control byte 0x%02x at offset %zu", c, i);
    if (c == '(' || c == '[' || c == '{' || c == '<') {
      if (++depth > kMaxCapsNesting)
        return fail("CAPS string nests deeper than %d levels", kMaxCapsNesting);
    } else if ((c == ')' || c == ']' || c == '}' || c == '>') && depth > 0) {
      --depth;
    }
  }
  return r;
}

DecodeResult decode(const uint8_t *bytes, size_t len, size_t max_payload, MessageView &out) {
  return decode(bytes, len, max_payload, Protocol::kV1Client, out);
}

DecodeResult decode(const uint8_t *bytes, size_t len, size_t max_payload, Protocol protocol,
                    MessageView &out) {
  Header header;
  DecodeResult r = parse_header(bytes, len, max_payload, protocol, header);
  if (r.status != DecodeStatus::kMessage) return r;
  if (len < r.size) return need(r.size);

  const uint8_t *payload = bytes + kHeaderSize;
  const size_t payload_size = header.payload_size;
  MessageView view;
  view.type = header.type;
  switch (header.type) {
    case MessageType::kCaps: {
      const std::string_view caps(reinterpret_cast<const char *>(payload), payload_size);
      DecodeResult checked = check_caps(caps);
      if (checked.status != DecodeStatus::kMessage) return checked;
      view.caps = caps;
      break;
    }
    case MessageType::kBuffer: {
      const uint32_t flags = get_u32(payload + kOffFlags);
      const uint32_t reserved = get_u32(payload + kOffMetaReserved);
      if (reserved != 0)
        return fail("BUFFER reserved field is 0x%08" PRIx32 " (must be 0)", reserved);
      if ((flags & ~static_cast<uint32_t>(kKnownFlags)) != 0)
        return fail("BUFFER carries unknown flag bits 0x%08" PRIx32,
                    flags & ~static_cast<uint32_t>(kKnownFlags));
      view.meta.pts = get_u64(payload + kOffPts);
      view.meta.dts = get_u64(payload + kOffDts);
      view.meta.duration = get_u64(payload + kOffDuration);
      view.meta.flags = flags;
      view.meta.sequence = get_u64(payload + kOffSequence);
      view.meta.send_time_ns = get_u64(payload + kOffSendTime);
      view.data = payload + kBufferMetaSize;
      view.data_size = payload_size - kBufferMetaSize;
      break;
    }
    case MessageType::kEos:
      break;
    case MessageType::kError: {
      const size_t text_size = payload_size - kErrorCodeSize;
      if (text_size > kMaxErrorText)  // parse_header already bounds it; kept for locality
        return fail("ERROR text of %zu bytes exceeds the maximum of %zu", text_size, kMaxErrorText);
      view.error_code = get_u16(payload);
      view.error_text =
          std::string_view(reinterpret_cast<const char *>(payload + kErrorCodeSize), text_size);
      break;
    }
    case MessageType::kHello: {
      const Verdict v = check_hello(payload, payload_size, view);
      if (!v) return fail("HELLO: %s", v.why);
      break;
    }
    case MessageType::kWelcome: {
      const Verdict v = check_welcome(payload, payload_size, view);
      if (!v) return fail("WELCOME: %s", v.why);
      break;
    }
    case MessageType::kKeyframeRequest:
    case MessageType::kListStreams:
      break;
    case MessageType::kStreamList: {
      const Verdict v = check_stream_list(payload, payload_size, view.streams);
      if (!v) return fail("STREAM_LIST: %s", v.why);
      break;
    }
    case MessageType::kRenditionRequest: {
      const Verdict v = check_rendition_request(payload, payload_size, view);
      if (!v) return fail("RENDITION_REQUEST: %s", v.why);
      break;
    }
    case MessageType::kRendition: {
      const Verdict v = check_rendition(payload, payload_size, view);
      if (!v) return fail("RENDITION: %s", v.why);
      break;
    }
  }
  out = view;
  return r;
}

// Precondition: caps is non-empty, has no NUL byte and fits in a u32 length;
// the server only encodes caps strings it got from gst_caps_to_string().
std::vector<uint8_t> encode_caps(std::string_view caps, Version version) {
  assert(!caps.empty() && caps.find('\0') == std::string_view::npos && caps.size() <= UINT32_MAX);
  std::vector<uint8_t> msg(kHeaderSize + caps.size());
  put_header(msg.data(), MessageType::kCaps, static_cast<uint32_t>(caps.size()), version);
  if (!caps.empty()) std::memcpy(msg.data() + kHeaderSize, caps.data(), caps.size());
  return msg;
}

std::vector<uint8_t> encode_eos(Version version) {
  std::vector<uint8_t> msg(kHeaderSize);
  put_header(msg.data(), MessageType::kEos, 0, version);
  return msg;
}

std::vector<uint8_t> encode_error(ErrorCode code, std::string_view text, Version version) {
  const std::string_view sent = truncate_utf8(text, kMaxErrorText);
  std::vector<uint8_t> msg(kHeaderSize + kErrorCodeSize + sent.size());
  put_header(msg.data(), MessageType::kError, static_cast<uint32_t>(kErrorCodeSize + sent.size()),
             version);
  put_u16(msg.data() + kHeaderSize, static_cast<uint16_t>(code));
  if (!sent.empty())
    std::memcpy(msg.data() + kHeaderSize + kErrorCodeSize, sent.data(), sent.size());
  return msg;
}

// Precondition: size <= UINT32_MAX - kBufferMetaSize.
std::vector<uint8_t> encode_buffer(const BufferMeta &meta, const uint8_t *data, size_t size,
                                   Version version) {
  assert(size <= UINT32_MAX - kBufferMetaSize);
  std::vector<uint8_t> msg(kHeaderSize + kBufferMetaSize + size);
  write_buffer_prefix(msg.data(), meta, static_cast<uint32_t>(size), version);
  if (size != 0) std::memcpy(msg.data() + kHeaderSize + kBufferMetaSize, data, size);
  return msg;
}

// Flag bits outside kKnownFlags are not sent: a decoder rejects them, and
// the encoder must never produce a message its own decoder refuses.
// Precondition: data_size <= UINT32_MAX - kBufferMetaSize.
void write_buffer_prefix(uint8_t *out, const BufferMeta &meta, uint32_t data_size,
                         Version version) {
  assert(data_size <= UINT32_MAX - kBufferMetaSize);
  put_header(out, MessageType::kBuffer, static_cast<uint32_t>(kBufferMetaSize + data_size),
             version);
  uint8_t *p = out + kHeaderSize;
  put_u64(p + kOffPts, meta.pts);
  put_u64(p + kOffDts, meta.dts);
  put_u64(p + kOffDuration, meta.duration);
  put_u32(p + kOffFlags, meta.flags & kKnownFlags);
  put_u32(p + kOffMetaReserved, 0);
  put_u64(p + kOffSequence, meta.sequence);
  put_u64(p + kOffSendTime, meta.send_time_ns);
}

void write_header(uint8_t *out, MessageType type, uint32_t payload_size, Version version) {
  put_header(out, type, payload_size, version);
}

MessageReader::MessageReader(size_t max_payload, size_t chunk)
    : MessageReader(Protocol::kV1Client, max_payload, chunk) {}

MessageReader::MessageReader(Protocol protocol, size_t max_payload, size_t chunk)
    : protocol_(protocol), max_payload_(max_payload), chunk_(chunk == 0 ? 1 : chunk) {}

MessageReader::Space MessageReader::prepare() {
  const size_t end = total_ == 0 ? kHeaderSize : total_;  // the buffer never grows past it
  try {
    if (!buf_) buf_ = std::make_shared<std::vector<uint8_t>>();
    if (buf_->size() <= filled_) {
      const size_t need = filled_ + std::min(chunk_, end - filled_);
      if (buf_->capacity() < need) {
        // Doubling keeps the copies amortized; clamping to the message size
        // leaves no slack once the whole message is in.
        buf_->reserve(std::min(std::max(need, 2 * buf_->capacity()), end));
      }
      buf_->resize(need);
    }
  } catch (...) {  // std::bad_alloc, std::length_error
    return Space{};
  }
  return Space{buf_->data() + filled_, buf_->size() - filled_};
}

DecodeResult MessageReader::commit(size_t n) {
  filled_ += n;
  if (total_ == 0) {
    Header header;
    DecodeResult r =
        parse_header(buf_ ? buf_->data() : nullptr, filled_, max_payload_, protocol_, header);
    if (r.status != DecodeStatus::kMessage) return r;
    total_ = r.size;
  }
  if (filled_ < total_) return need(total_);
  DecodeResult done;
  done.status = DecodeStatus::kMessage;
  done.size = total_;
  return done;
}

std::shared_ptr<std::vector<uint8_t>> MessageReader::take() {
  auto out = std::move(buf_);
  buf_.reset();
  filled_ = 0;
  total_ = 0;
  return out;
}

size_t MessageReader::capacity() const {
  return buf_ ? buf_->capacity() : 0;
}

const char *message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kCaps:
      return "caps";
    case MessageType::kBuffer:
      return "buffer";
    case MessageType::kEos:
      return "eos";
    case MessageType::kError:
      return "error";
    case MessageType::kHello:
      return "hello";
    case MessageType::kWelcome:
      return "welcome";
    case MessageType::kKeyframeRequest:
      return "keyframe-request";
    case MessageType::kListStreams:
      return "list-streams";
    case MessageType::kStreamList:
      return "stream-list";
    case MessageType::kRenditionRequest:
      return "rendition-request";
    case MessageType::kRendition:
      return "rendition";
  }
  return "unknown";
}

const char *protocol_name(Protocol protocol) {
  switch (protocol) {
    case Protocol::kV1Client:
      return "v1 client";
    case Protocol::kV2Client:
      return "v2 client";
    case Protocol::kV2Server:
      return "v2 server";
  }
  return "unknown";
}

}  // namespace tlsframe::wire
