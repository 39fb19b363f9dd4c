// libFuzzer target for the wire-protocol decoder (core/wire_format, wire_v2,
// wire_fields), both versions and both directions.
//
// The first input byte picks the reader (byte % 3): 0 a version 1 client, 1 a
// version 2 client (reads server messages), 2 a version 2 server (reads client
// messages, with the client maximum of 4096 bytes as its small limit). The rest
// is the byte stream that reader gets after the TLS handshake.
// Properties checked, each by an abort so libFuzzer reports the input:
//  1. decode() is total: it returns kMessage, kNeedMore or kError, and its sizes are
//     consistent with the input (a message never claims more bytes than given, a
//     "need more" always asks for more than given).
//  2. parse_header() and decode() agree on the header.
//  3. Round trip: every decoded message, re-encoded with the encoders (field blocks
//     field by field, unknown keys included), gives back exactly the bytes it was
//     decoded from; views point into the input.
//  4. Direction and version are exclusive: a message one reader accepts, the other
//     two refuse.
//  5. Split invariance: feeding the same stream in chunks (sizes chosen by the
//     fuzzer from the input's last bytes) through a receive buffer, and through a
//     MessageReader as the receiver and server do, yields the same messages and the
//     same final state as decoding it whole.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/wire_fields.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"

namespace wire = tlsframe::wire;

namespace {

// Limits of a small receiver and of a default one; both must behave the same way.
constexpr size_t kSmallMax = 4096;
static_assert(kSmallMax == wire::kMaxClientPayload, "the small limit is the server's");

constexpr wire::Protocol kProtocols[] = {wire::Protocol::kV1Client, wire::Protocol::kV2Client,
                                         wire::Protocol::kV2Server};

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "fuzz_wire_decoder: property violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char *what) {
  if (!ok) fail(what);
}

std::vector<wire::Field> fields_of(const wire::FieldBlock &block) {
  std::vector<wire::Field> out;
  size_t off = 0;
  wire::Field f;
  while (block.next(off, f)) out.push_back(f);
  check(out.size() == block.count, "a field block iterates to another count than it holds");
  return out;
}

bool inside(const void *p, size_t n, const uint8_t *begin, const uint8_t *end) {
  const auto *b = static_cast<const uint8_t *>(p);
  return n == 0 || (b >= begin && b + n <= end);
}

std::vector<uint8_t> reencode(const wire::MessageView &m, wire::Version v, const uint8_t *begin,
                              const uint8_t *end) {
  switch (m.type) {
    case wire::MessageType::kCaps:
      return wire::encode_caps(m.caps, v);
    case wire::MessageType::kBuffer:
      return wire::encode_buffer(m.meta, m.data, m.data_size, v);
    case wire::MessageType::kEos:
      return wire::encode_eos(v);
    case wire::MessageType::kError:
      return wire::encode_error(static_cast<wire::ErrorCode>(m.error_code), m.error_text, v);
    case wire::MessageType::kHello:
      check(m.stream.empty() || wire::valid_stream_name(m.stream), "HELLO with an invalid name");
      check(inside(m.stream.data(), m.stream.size(), begin, end), "HELLO view outside the input");
      return wire::encode_hello(fields_of(m.fields));
    case wire::MessageType::kWelcome:
      check(m.server.size() <= wire::kMaxServerText, "WELCOME server text too long");
      check(inside(m.server.data(), m.server.size(), begin, end), "WELCOME view outside the input");
      return wire::encode_welcome(fields_of(m.fields));
    case wire::MessageType::kRenditionRequest:
      check(m.rendition == wire::kRenditionAuto || wire::valid_rendition_name(m.rendition),
            "RENDITION_REQUEST with an invalid rendition");
      check(inside(m.rendition.data(), m.rendition.size(), begin, end),
            "RENDITION_REQUEST view outside the input");
      return wire::encode_rendition_request(fields_of(m.fields));
    case wire::MessageType::kRendition:
      check(wire::valid_rendition_name(m.rendition), "RENDITION with an invalid rendition");
      check(m.reason.size() <= wire::kMaxRenditionReason, "RENDITION reason too long");
      check(inside(m.reason.data(), m.reason.size(), begin, end), "RENDITION view outside the input");
      return wire::encode_rendition(fields_of(m.fields));
    case wire::MessageType::kKeyframeRequest:
      return wire::encode_keyframe_request();
    case wire::MessageType::kListStreams:
      return wire::encode_list_streams();
    case wire::MessageType::kStreamList: {
      std::vector<std::vector<wire::Field>> entries;
      size_t off = 0;
      wire::FieldBlock block;
      while (m.streams.next(off, block)) entries.push_back(fields_of(block));
      check(entries.size() == m.streams.count, "STREAM_LIST iterates to another count");
      size_t off2 = 0;
      size_t typed = 0;
      wire::StreamEntry e;
      while (wire::next_stream(m.streams, off2, e)) {
        check(e.caps.size() <= wire::kMaxCapsSummary, "STREAM_LIST caps summary too long");
        check(inside(e.name.data(), e.name.size(), begin, end), "entry view outside the input");
        ++typed;
      }
      check(typed == entries.size(), "next_stream() stops before the last entry");
      return wire::encode_stream_list_entries(entries);
    }
  }
  fail("decoded message has an unknown type");
}

// What decoding a stream produced: the byte ranges of its messages, and how it ended.
struct Outcome {
  std::vector<std::pair<size_t, size_t>> messages;  // offset, size
  wire::DecodeStatus end = wire::DecodeStatus::kNeedMore;
  size_t end_offset = 0;  // where the stream stopped being decodable
};

// Decodes one message at bytes[0..len) and checks properties 1-4.
wire::DecodeResult decode_checked(const uint8_t *bytes, size_t len, size_t max_payload,
                                  wire::Protocol p) {
  wire::MessageView view;
  wire::DecodeResult r = wire::decode(bytes, len, max_payload, p, view);
  wire::Header header;
  wire::DecodeResult h = wire::parse_header(bytes, len, max_payload, p, header);
  switch (r.status) {
    case wire::DecodeStatus::kMessage: {
      check(h.status == wire::DecodeStatus::kMessage, "decode accepted a header parse_header rejects");
      check(r.size == h.size, "decode and parse_header disagree on the message size");
      check(r.size >= wire::kHeaderSize && r.size <= len, "message size outside the input");
      check(header.type == view.type, "decode and parse_header disagree on the type");
      check(r.size - wire::kHeaderSize <= max_payload, "payload above the maximum accepted");
      const std::vector<uint8_t> again =
          reencode(view, wire::protocol_version(p), bytes, bytes + r.size);
      check(again.size() == r.size && std::equal(again.begin(), again.end(), bytes),
            "re-encoding a decoded message gives different bytes");
      if (view.type == wire::MessageType::kCaps) {
        check(!view.caps.empty() && view.caps.size() <= wire::kMaxCapsSize, "CAPS size out of range");
        // The views must point into the input.
        check(reinterpret_cast<const uint8_t *>(view.caps.data()) == bytes + wire::kHeaderSize,
              "CAPS view does not point into the input");
      }
      for (wire::Protocol other : kProtocols) {
        if (other == p) continue;
        wire::MessageView ov;
        check(wire::decode(bytes, r.size, wire::kDefaultMaxPayload, other, ov).status ==
                  wire::DecodeStatus::kError,
              "a message is accepted by two readers (version or direction not exclusive)");
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

Outcome decode_whole(const uint8_t *data, size_t size, size_t max_payload, wire::Protocol p) {
  Outcome out;
  size_t off = 0;
  for (;;) {
    wire::DecodeResult r = decode_checked(data + off, size - off, max_payload, p);
    if (r.status != wire::DecodeStatus::kMessage) {
      out.end = r.status;
      out.end_offset = off;
      return out;
    }
    out.messages.emplace_back(off, r.size);
    off += r.size;
  }
}

// Chunk sizes from `splits`: small reads, now and then a large one.
struct Chunker {
  const uint8_t *splits;
  size_t nsplits;
  size_t k = 0;
  size_t next(size_t remaining) {
    size_t chunk = nsplits ? static_cast<size_t>(splits[k++ % nsplits]) + 1 : remaining;
    if (nsplits && (k % 7) == 0) chunk *= 64;
    return std::min(chunk, remaining);
  }
};

// Feeds data in chunks into a growing buffer and decodes whenever it can, like a
// receiver reading from a socket.
Outcome decode_split(const uint8_t *data, size_t size, Chunker chunks, size_t max_payload,
                     wire::Protocol p) {
  Outcome out;
  std::vector<uint8_t> pending;
  size_t consumed = 0;  // stream offset of pending[0]
  size_t fed = 0;
  wire::DecodeStatus last = wire::DecodeStatus::kNeedMore;
  while (fed < size || fed == 0) {
    const size_t chunk = chunks.next(size - fed);
    // A copy the size of the chunk, so ASan sees reads past what was received so far.
    pending.insert(pending.end(), data + fed, data + fed + chunk);
    fed += chunk;
    for (;;) {
      std::vector<uint8_t> view(pending.begin(), pending.end());
      wire::DecodeResult r = decode_checked(view.data(), view.size(), max_payload, p);
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

// Feeds data through a MessageReader (the receiver's and the server's read
// buffer): header errors come from commit(), payload errors from decode().
Outcome decode_reader(const uint8_t *data, size_t size, Chunker chunks, size_t max_payload,
                      wire::Protocol p) {
  Outcome out;
  wire::MessageReader reader(p, max_payload, 1024);
  size_t fed = 0;
  size_t consumed = 0;
  while (fed < size) {
    wire::MessageReader::Space space = reader.prepare();
    check(space.size > 0, "MessageReader offers no space");
    const size_t n = std::min(space.size, chunks.next(size - fed));
    std::memcpy(space.data, data + fed, n);
    fed += n;
    wire::DecodeResult r = reader.commit(n);
    if (r.status == wire::DecodeStatus::kError) {
      out.end = r.status;
      out.end_offset = consumed;
      return out;
    }
    if (r.status == wire::DecodeStatus::kNeedMore) continue;
    check(reader.received() == r.size, "MessageReader received more than the message");
    auto msg = reader.take();
    check(msg && msg->size() == r.size, "MessageReader message of another size");
    wire::DecodeResult d = decode_checked(msg->data(), msg->size(), max_payload, p);
    if (d.status != wire::DecodeStatus::kMessage) {
      check(d.status == wire::DecodeStatus::kError, "a whole message needs more");
      out.end = d.status;
      out.end_offset = consumed;
      return out;
    }
    out.messages.emplace_back(consumed, r.size);
    consumed += r.size;
  }
  out.end = wire::DecodeStatus::kNeedMore;
  out.end_offset = consumed;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *input, size_t input_size) {
  if (input_size == 0) return 0;
  const wire::Protocol p = kProtocols[input[0] % 3];
  const uint8_t *data = input + 1;
  const size_t size = input_size - 1;

  const Outcome whole = decode_whole(data, size, wire::kDefaultMaxPayload, p);

  // A smaller limit may stop the stream earlier, never accept something else.
  const Outcome small = decode_whole(data, size, kSmallMax, p);
  check(small.messages.size() <= whole.messages.size(), "a smaller limit accepted more messages");
  for (size_t i = 0; i < small.messages.size(); ++i)
    check(small.messages[i] == whole.messages[i], "a smaller limit changed a message");

  // The last up to 16 bytes choose the chunk sizes; the whole input is still the stream.
  const size_t nsplits = std::min<size_t>(16, size);
  const Chunker chunks{data + size - nsplits, nsplits};
  const Outcome split = decode_split(data, size, chunks, wire::kDefaultMaxPayload, p);
  check(split.messages == whole.messages, "chunked decoding gives other messages");
  check(split.end == whole.end, "chunked decoding ends in another state");
  check(split.end_offset == whole.end_offset, "chunked decoding stops elsewhere");

  const Outcome read = decode_reader(data, size, chunks, wire::kDefaultMaxPayload, p);
  check(read.messages == whole.messages, "MessageReader gives other messages");
  check(read.end == whole.end, "MessageReader ends in another state");
  check(read.end_offset == whole.end_offset, "MessageReader stops elsewhere");
  return 0;
}
