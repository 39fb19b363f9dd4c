// libFuzzer target for the wire-protocol decoder (core/wire_format).
//
// The input is a byte stream as a client would read it after the TLS handshake.
// Properties checked, each by an abort so libFuzzer reports the input:
//  1. decode() is total: it returns kMessage, kNeedMore or kError, and its sizes are
//     consistent with the input (a message never claims more bytes than given, a
//     "need more" always asks for more than given).
//  2. parse_header() and decode() agree on the header.
//  3. Round trip: every decoded message, re-encoded with the encoders, gives back
//     exactly the bytes it was decoded from.
//  4. Split invariance: feeding the same stream in chunks (sizes chosen by the
//     fuzzer from the input's last bytes) through a receive buffer, as the receiver
//     does, yields the same messages and the same final state as decoding it whole.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/wire_format.h"

namespace wire = tlsframe::wire;

namespace {

// Limits of a small receiver and of a default one; both must behave the same way.
constexpr size_t kSmallMax = 4096;

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "fuzz_wire_decoder: property violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char *what) {
  if (!ok) fail(what);
}

std::vector<uint8_t> reencode(const wire::MessageView &m) {
  switch (m.type) {
    case wire::MessageType::kCaps:
      return wire::encode_caps(m.caps);
    case wire::MessageType::kBuffer:
      return wire::encode_buffer(m.meta, m.data, m.data_size);
    case wire::MessageType::kEos:
      return wire::encode_eos();
    case wire::MessageType::kError:
      return wire::encode_error(static_cast<wire::ErrorCode>(m.error_code), m.error_text);
  }
  fail("decoded message has an unknown type");
}

// What decoding a stream produced: the byte ranges of its messages, and how it ended.
struct Outcome {
  std::vector<std::pair<size_t, size_t>> messages;  // offset, size
  wire::DecodeStatus end = wire::DecodeStatus::kNeedMore;
  size_t end_offset = 0;  // where the stream stopped being decodable
};

// Decodes one message at bytes[0..len) and checks properties 1-3.
wire::DecodeResult decode_checked(const uint8_t *bytes, size_t len, size_t max_payload) {
  wire::MessageView view;
  wire::DecodeResult r = wire::decode(bytes, len, max_payload, view);
  wire::Header header;
  wire::DecodeResult h = wire::parse_header(bytes, len, max_payload, header);
  switch (r.status) {
    case wire::DecodeStatus::kMessage: {
      check(h.status == wire::DecodeStatus::kMessage, "decode accepted a header parse_header rejects");
      check(r.size == h.size, "decode and parse_header disagree on the message size");
      check(r.size >= wire::kHeaderSize && r.size <= len, "message size outside the input");
      check(header.type == view.type, "decode and parse_header disagree on the type");
      check(r.size - wire::kHeaderSize <= max_payload, "payload above the maximum accepted");
      const std::vector<uint8_t> again = reencode(view);
      check(again.size() == r.size && std::equal(again.begin(), again.end(), bytes),
            "re-encoding a decoded message gives different bytes");
      if (view.type == wire::MessageType::kCaps) {
        check(!view.caps.empty() && view.caps.size() <= wire::kMaxCapsSize, "CAPS size out of range");
        // The views must point into the input.
        check(reinterpret_cast<const uint8_t *>(view.caps.data()) == bytes + wire::kHeaderSize,
              "CAPS view does not point into the input");
      }
      break;
    }
    case wire::DecodeStatus::kNeedMore:
      check(h.status != wire::DecodeStatus::kError, "decode wants more after a bad header");
      check(r.size == 0 || (r.size > len && r.size >= wire::kHeaderSize),
            "need-more asks for no more than it was given");
      break;
    case wire::DecodeStatus::kError:
      check(!r.error.empty(), "error without a message");
      break;
    default:
      fail("decode returned an unknown status");
  }
  return r;
}

Outcome decode_whole(const uint8_t *data, size_t size, size_t max_payload) {
  Outcome out;
  size_t off = 0;
  for (;;) {
    wire::DecodeResult r = decode_checked(data + off, size - off, max_payload);
    if (r.status != wire::DecodeStatus::kMessage) {
      out.end = r.status;
      out.end_offset = off;
      return out;
    }
    out.messages.emplace_back(off, r.size);
    off += r.size;
  }
}

// Feeds data in chunks into a growing buffer and decodes whenever it can, like a
// receiver reading from a socket. Chunk sizes come from `splits`.
Outcome decode_split(const uint8_t *data, size_t size, const uint8_t *splits, size_t nsplits,
                     size_t max_payload) {
  Outcome out;
  std::vector<uint8_t> pending;
  size_t consumed = 0;  // stream offset of pending[0]
  size_t fed = 0;
  size_t k = 0;
  wire::DecodeStatus last = wire::DecodeStatus::kNeedMore;
  while (fed < size || fed == 0) {
    size_t chunk = nsplits ? static_cast<size_t>(splits[k++ % nsplits]) + 1 : size;
    if (nsplits && (k % 7) == 0) chunk *= 64;  // now and then a large read
    chunk = std::min(chunk, size - fed);
    // A copy the size of the chunk, so ASan sees reads past what was received so far.
    pending.insert(pending.end(), data + fed, data + fed + chunk);
    fed += chunk;
    for (;;) {
      std::vector<uint8_t> view(pending.begin(), pending.end());
      wire::DecodeResult r = decode_checked(view.data(), view.size(), max_payload);
      last = r.status;
      if (r.status == wire::DecodeStatus::kError) {
        out.end = r.status;
        out.end_offset = consumed;
        return out;
      }
      if (r.status == wire::DecodeStatus::kNeedMore) break;
      out.messages.emplace_back(consumed, r.size);
      consumed += r.size;
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(r.size));
    }
    if (size == 0) break;
  }
  out.end = last;
  out.end_offset = consumed;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Outcome whole = decode_whole(data, size, wire::kDefaultMaxPayload);

  // A smaller limit may stop the stream earlier, never accept something else.
  const Outcome small = decode_whole(data, size, kSmallMax);
  check(small.messages.size() <= whole.messages.size(), "a smaller limit accepted more messages");
  for (size_t i = 0; i < small.messages.size(); ++i)
    check(small.messages[i] == whole.messages[i], "a smaller limit changed a message");

  // The last up to 16 bytes choose the chunk sizes; the whole input is still the stream.
  const size_t nsplits = std::min<size_t>(16, size);
  const Outcome split =
      decode_split(data, size, data + size - nsplits, nsplits, wire::kDefaultMaxPayload);
  check(split.messages == whole.messages, "chunked decoding gives other messages");
  check(split.end == whole.end, "chunked decoding ends in another state");
  check(split.end_offset == whole.end_offset, "chunked decoding stops elsewhere");
  return 0;
}
