// Unit tests for the tlsframe wire format (core/wire_format.h). The byte
// layout asserted here is the one documented in docs/PROTOCOL.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/alloc_count.h"
#include "core/wire_format.h"

namespace tlsframe::wire {
namespace {

using Bytes = std::vector<uint8_t>;

using Exact = tlsframe::test::ExactBytes;

// The test's own header writer, independent of the implementation.
Bytes RawHeader(uint8_t type, uint32_t payload_size) {
  return {'T',
          'L',
          'S',
          'F',
          1,
          type,
          0,
          0,
          static_cast<uint8_t>(payload_size >> 24),
          static_cast<uint8_t>(payload_size >> 16),
          static_cast<uint8_t>(payload_size >> 8),
          static_cast<uint8_t>(payload_size)};
}

Bytes RawMessage(uint8_t type, const Bytes &payload) {
  Bytes m = RawHeader(type, static_cast<uint32_t>(payload.size()));
  m.insert(m.end(), payload.begin(), payload.end());
  return m;
}

// A BUFFER payload with zero timestamps and the given flags/reserved words.
Bytes RawBufferPayload(uint32_t flags, uint32_t reserved, size_t data_size) {
  Bytes p(kBufferMetaSize + data_size, 0);
  for (int i = 0; i < 4; ++i) {
    p[24 + i] = static_cast<uint8_t>(flags >> (24 - 8 * i));
    p[28 + i] = static_cast<uint8_t>(reserved >> (24 - 8 * i));
  }
  return p;
}

Bytes Concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes &p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

DecodeResult Decode(const Exact &in, MessageView &out, size_t max = kDefaultMaxPayload) {
  return decode(in.data(), in.size(), max, out);
}

DecodeResult DecodePrefix(const Bytes &b, size_t len, size_t max = kDefaultMaxPayload) {
  Exact in(b.data(), len);
  MessageView v;
  return decode(in.data(), in.size(), max, v);
}

// Decodes a whole message that must be valid and exactly b.size() long.
MessageView DecodeWhole(const Exact &in) {
  MessageView v;
  DecodeResult r = Decode(in, v);
  EXPECT_EQ(r.status, DecodeStatus::kMessage) << r.error;
  EXPECT_EQ(r.size, in.size());
  return v;
}

void ExpectError(const Bytes &b, const std::string &contains, size_t max = kDefaultMaxPayload) {
  Exact in(b);
  MessageView v;
  DecodeResult r = Decode(in, v, max);
  EXPECT_EQ(r.status, DecodeStatus::kError) << "size " << r.size;
  EXPECT_NE(r.error.find(contains), std::string::npos)
      << "error \"" << r.error << "\" lacks \"" << contains << "\"";
}

BufferMeta SampleMeta() {
  BufferMeta m;
  m.pts = 1'000'000'000;
  m.dts = 900'000'000;
  m.duration = 33'333'333;
  m.flags = kFlagDeltaUnit | kFlagDiscont | kFlagMarker;
  m.sequence = 7;
  m.send_time_ns = 1'700'000'000'123'456'789;
  return m;
}

const std::string kJpegCaps =
    "image/jpeg, width=(int)1280, height=(int)720, framerate=(fraction)30/1";

// One valid message of every shape, for tests that sweep over all of them.
std::vector<Bytes> SampleMessages() {
  const Bytes data = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  return {encode_caps(kJpegCaps),
          encode_caps("x"),
          encode_buffer(SampleMeta(), data.data(), data.size()),
          encode_buffer(BufferMeta{}, nullptr, 0),
          encode_eos(),
          encode_error(ErrorCode::kServerFull, "max-clients reached"),
          encode_error(ErrorCode::kUnspecified, "")};
}

// ---------------------------------------------------------------------------
// Round trips

TEST(WireRoundTrip, CapsStringComesBackUnchanged) {
  Exact in(encode_caps(kJpegCaps));
  EXPECT_EQ(in.size(), kHeaderSize + kJpegCaps.size());
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.type, MessageType::kCaps);
  EXPECT_EQ(v.caps, kJpegCaps);
  EXPECT_EQ(reinterpret_cast<const uint8_t *>(v.caps.data()), in.data() + kHeaderSize)
      << "caps view must point into the input, not a copy";
}

TEST(WireRoundTrip, BufferMetaFieldsAndDataComeBackUnchanged) {
  const Bytes data = {0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0xFF};
  const BufferMeta meta = SampleMeta();
  Exact in(encode_buffer(meta, data.data(), data.size()));
  ASSERT_EQ(in.size(), kHeaderSize + kBufferMetaSize + data.size());
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.type, MessageType::kBuffer);
  EXPECT_EQ(v.meta.pts, meta.pts);
  EXPECT_EQ(v.meta.dts, meta.dts);
  EXPECT_EQ(v.meta.duration, meta.duration);
  EXPECT_EQ(v.meta.flags, meta.flags);
  EXPECT_EQ(v.meta.sequence, meta.sequence);
  EXPECT_EQ(v.meta.send_time_ns, meta.send_time_ns);
  ASSERT_EQ(v.data_size, data.size());
  EXPECT_EQ(v.data, in.data() + kHeaderSize + kBufferMetaSize);
  EXPECT_EQ(Bytes(v.data, v.data + v.data_size), data);
}

TEST(WireRoundTrip, BufferTimestampsOfNoTimeStayNoTime) {
  BufferMeta meta;  // pts, dts and duration default to kNoTime
  meta.sequence = 1;
  const uint8_t byte = 0x42;
  Exact in(encode_buffer(meta, &byte, 1));
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.meta.pts, kNoTime);
  EXPECT_EQ(v.meta.dts, kNoTime);
  EXPECT_EQ(v.meta.duration, kNoTime);
  EXPECT_EQ(v.meta.flags, 0u);
  EXPECT_EQ(v.meta.sequence, 1u);
}

TEST(WireRoundTrip, BufferMetaMaximumValuesSurviveAllSixtyFourBits) {
  BufferMeta meta;
  meta.pts = UINT64_MAX - 1;
  meta.dts = 0x8000000000000001ull;
  meta.duration = 0x0123456789ABCDEFull;
  meta.flags = kKnownFlags;
  meta.sequence = UINT64_MAX;
  meta.send_time_ns = UINT64_MAX;
  Exact in(encode_buffer(meta, nullptr, 0));
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.meta.pts, meta.pts);
  EXPECT_EQ(v.meta.dts, meta.dts);
  EXPECT_EQ(v.meta.duration, meta.duration);
  EXPECT_EQ(v.meta.flags, static_cast<uint32_t>(kKnownFlags));
  EXPECT_EQ(v.meta.sequence, meta.sequence);
  EXPECT_EQ(v.meta.send_time_ns, meta.send_time_ns);
}

TEST(WireRoundTrip, BufferWithNoDataIsHeaderPlusMetaOnly) {
  Exact in(encode_buffer(SampleMeta(), nullptr, 0));
  ASSERT_EQ(in.size(), kHeaderSize + kBufferMetaSize);
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.type, MessageType::kBuffer);
  EXPECT_EQ(v.data_size, 0u);
  EXPECT_EQ(v.meta.sequence, SampleMeta().sequence);
}

TEST(WireRoundTrip, EncoderNeverSendsFlagBitsTheDecoderWouldReject) {
  BufferMeta meta;
  meta.flags = 0xFFFFFFFFu;
  Exact in(encode_buffer(meta, nullptr, 0));
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.meta.flags, static_cast<uint32_t>(kKnownFlags));
}

TEST(WireRoundTrip, WriteBufferPrefixProducesTheSameBytesAsEncodeBuffer) {
  const Bytes data = {9, 8, 7};
  const Bytes whole = encode_buffer(SampleMeta(), data.data(), data.size());
  Bytes prefix(kHeaderSize + kBufferMetaSize, 0xAA);
  write_buffer_prefix(prefix.data(), SampleMeta(), static_cast<uint32_t>(data.size()));
  EXPECT_EQ(prefix, Bytes(whole.begin(), whole.begin() + kHeaderSize + kBufferMetaSize));
}

TEST(WireRoundTrip, EosIsAHeaderWithNoPayload) {
  Exact in(encode_eos());
  ASSERT_EQ(in.size(), kHeaderSize);
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.type, MessageType::kEos);
}

TEST(WireRoundTrip, ErrorCodeAndTextComeBackUnchangedForEveryCode) {
  for (ErrorCode code : {ErrorCode::kUnspecified, ErrorCode::kServerFull, ErrorCode::kShuttingDown,
                         ErrorCode::kProtocol, ErrorCode::kTimeout}) {
    Exact in(encode_error(code, "server is full (8 clients)"));
    MessageView v = DecodeWhole(in);
    EXPECT_EQ(v.type, MessageType::kError);
    EXPECT_EQ(v.error_code, static_cast<uint16_t>(code));
    EXPECT_EQ(v.error_text, "server is full (8 clients)");
  }
}

TEST(WireRoundTrip, ErrorWithEmptyTextCarriesOnlyTheCode) {
  Exact in(encode_error(ErrorCode::kTimeout, ""));
  ASSERT_EQ(in.size(), kHeaderSize + 2);
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.error_code, static_cast<uint16_t>(ErrorCode::kTimeout));
  EXPECT_TRUE(v.error_text.empty());
}

TEST(WireRoundTrip, ErrorTextOfExactlyTheMaximumLengthIsKept) {
  const std::string text(kMaxErrorText, 'a');
  Exact in(encode_error(ErrorCode::kProtocol, text));
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.error_text, text);
}

TEST(WireRoundTrip, EncodeErrorTruncatesLongTextToTheMaximum) {
  std::string text;
  for (int i = 0; text.size() < 3 * kMaxErrorText; ++i) text += std::to_string(i) + ' ';
  Exact in(encode_error(ErrorCode::kShuttingDown, text));
  ASSERT_EQ(in.size(), kHeaderSize + 2 + kMaxErrorText);
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.error_code, static_cast<uint16_t>(ErrorCode::kShuttingDown));
  EXPECT_EQ(v.error_text, text.substr(0, kMaxErrorText));
}

TEST(WireRoundTrip, EncodeErrorTruncationDoesNotSplitAUtf8Character) {
  // 1023 ASCII bytes then "é" (2 bytes): the cut at 1024 would split it.
  const std::string text = std::string(kMaxErrorText - 1, 'a') + "\xC3\xA9" + "tail";
  Exact in(encode_error(ErrorCode::kProtocol, text));
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.error_text, std::string(kMaxErrorText - 1, 'a'));
}

TEST(WireRoundTrip, MessageTypeNamesAreStableAndUnknownValuesAreNamedUnknown) {
  EXPECT_STREQ(message_type_name(MessageType::kCaps), "caps");
  EXPECT_STREQ(message_type_name(MessageType::kBuffer), "buffer");
  EXPECT_STREQ(message_type_name(MessageType::kEos), "eos");
  EXPECT_STREQ(message_type_name(MessageType::kError), "error");
  EXPECT_STREQ(message_type_name(static_cast<MessageType>(0)), "unknown");
  EXPECT_STREQ(message_type_name(MessageType::kHello), "hello");
  EXPECT_STREQ(message_type_name(MessageType::kWelcome), "welcome");
  EXPECT_STREQ(message_type_name(MessageType::kKeyframeRequest), "keyframe-request");
  EXPECT_STREQ(message_type_name(MessageType::kListStreams), "list-streams");
  EXPECT_STREQ(message_type_name(MessageType::kStreamList), "stream-list");
  EXPECT_STREQ(message_type_name(MessageType::kRenditionRequest), "rendition-request");
  EXPECT_STREQ(message_type_name(MessageType::kRendition), "rendition");
  EXPECT_STREQ(message_type_name(static_cast<MessageType>(12)), "unknown");
}

// ---------------------------------------------------------------------------
// Incomplete input and streams

TEST(WireIncomplete, EveryTruncationOfEveryMessageNeedsMoreWithTheRightSize) {
  for (const Bytes &msg : SampleMessages()) {
    for (size_t len = 0; len < msg.size(); ++len) {
      DecodeResult r = DecodePrefix(msg, len);
      ASSERT_EQ(r.status, DecodeStatus::kNeedMore)
          << "len " << len << " of " << msg.size() << ": " << r.error;
      EXPECT_EQ(r.size, len < kHeaderSize ? kHeaderSize : msg.size()) << "len " << len;
      EXPECT_GT(r.size, len);
    }
  }
}

TEST(WireIncomplete, ParseHeaderNeedsTheFullHeaderAndThenReportsTheMessageSize) {
  const Bytes msg = encode_caps(kJpegCaps);
  for (size_t len = 0; len < kHeaderSize; ++len) {
    Exact in(msg.data(), len);
    Header h;
    DecodeResult r = parse_header(in.data(), in.size(), kDefaultMaxPayload, h);
    EXPECT_EQ(r.status, DecodeStatus::kNeedMore) << "len " << len;
    EXPECT_EQ(r.size, kHeaderSize);
  }
  Exact in(msg.data(), kHeaderSize);  // header only: the payload is not needed
  Header h;
  DecodeResult r = parse_header(in.data(), in.size(), kDefaultMaxPayload, h);
  ASSERT_EQ(r.status, DecodeStatus::kMessage) << r.error;
  EXPECT_EQ(h.type, MessageType::kCaps);
  EXPECT_EQ(h.payload_size, kJpegCaps.size());
  EXPECT_EQ(r.size, msg.size());
}

TEST(WireIncomplete, ParseHeaderDoesNotValidateThePayload) {
  Bytes caps_with_nul = RawMessage(1, {'a', 0, 'b'});
  Header h;
  DecodeResult r = parse_header(caps_with_nul.data(), caps_with_nul.size(), kDefaultMaxPayload, h);
  EXPECT_EQ(r.status, DecodeStatus::kMessage) << r.error;
  EXPECT_EQ(h.payload_size, 3u);
}

TEST(WireIncomplete, EmptyAndNullInputNeedAHeader) {
  MessageView v;
  DecodeResult r = decode(nullptr, 0, kDefaultMaxPayload, v);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(r.size, kHeaderSize);
  Header h;
  r = parse_header(nullptr, 0, kDefaultMaxPayload, h);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(r.size, kHeaderSize);
}

TEST(WireIncomplete, NullInputWithNonzeroLengthIsAnErrorNotARead) {
  MessageView v;
  EXPECT_EQ(decode(nullptr, 5, kDefaultMaxPayload, v).status, DecodeStatus::kError);
}

TEST(WireStream, BackToBackMessagesDecodeOneAfterAnother) {
  const Bytes data = {0xDE, 0xAD};
  const Exact in(Concat({encode_caps(kJpegCaps), encode_buffer(SampleMeta(), data.data(), 2),
                         encode_buffer(BufferMeta{}, nullptr, 0),
                         encode_error(ErrorCode::kShuttingDown, "bye"), encode_eos()}));
  const MessageType expected[] = {MessageType::kCaps, MessageType::kBuffer, MessageType::kBuffer,
                                  MessageType::kError, MessageType::kEos};
  size_t offset = 0;
  for (MessageType type : expected) {
    MessageView v;
    DecodeResult r = decode(in.data() + offset, in.size() - offset, kDefaultMaxPayload, v);
    ASSERT_EQ(r.status, DecodeStatus::kMessage) << "at offset " << offset << ": " << r.error;
    EXPECT_EQ(v.type, type) << "at offset " << offset;
    if (type == MessageType::kCaps) {
      EXPECT_EQ(v.caps, kJpegCaps);
    } else if (type == MessageType::kError) {
      EXPECT_EQ(v.error_text, "bye");
    }
    offset += r.size;
  }
  EXPECT_EQ(offset, in.size());
  MessageView v;
  EXPECT_EQ(decode(in.data() + offset, 0, kDefaultMaxPayload, v).status, DecodeStatus::kNeedMore);
}

TEST(WireStream, TrailingPartialMessageDoesNotDisturbTheCompleteOneBeforeIt) {
  const Bytes eos = encode_eos();
  const Bytes caps = encode_caps(kJpegCaps);
  Bytes stream = Concat({eos, caps});
  stream.resize(eos.size() + 5);
  Exact in(stream);
  MessageView v;
  DecodeResult r = Decode(in, v);
  ASSERT_EQ(r.status, DecodeStatus::kMessage);
  EXPECT_EQ(r.size, eos.size());
  r = decode(in.data() + r.size, in.size() - r.size, kDefaultMaxPayload, v);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(r.size, kHeaderSize);
}

TEST(WireStream, DecodingValidOrIncompleteInputDoesNotAllocate) {
  const std::vector<Bytes> messages = SampleMessages();
  const Bytes stream = Concat({messages[0], messages[2], messages[4]});
  MessageView v;
  Header h;
  const long before = tlsframe::test::allocation_count();
  for (const Bytes &m : messages) {
    for (size_t len = 0; len <= m.size(); ++len) {
      DecodeResult r = decode(m.data(), len, kDefaultMaxPayload, v);
      r = parse_header(m.data(), len, kDefaultMaxPayload, h);
    }
  }
  for (size_t off = 0; off < stream.size();) {
    DecodeResult r = decode(stream.data() + off, stream.size() - off, kDefaultMaxPayload, v);
    if (r.status != DecodeStatus::kMessage) break;
    off += r.size;
  }
  EXPECT_EQ(tlsframe::test::allocation_count(), before);

  // The counter works: an error result does allocate, for its explanation.
  const Bytes bad = RawHeader(9, 0);
  DecodeResult r = decode(bad.data(), bad.size(), kDefaultMaxPayload, v);
  EXPECT_EQ(r.status, DecodeStatus::kError);
  EXPECT_GT(tlsframe::test::allocation_count(), before);
}

// ---------------------------------------------------------------------------
// Limits

TEST(WireLimits, PayloadOfExactlyTheMaximumIsAccepted) {
  const std::string caps(100, 'c');
  Exact in(encode_caps(caps));
  MessageView v;
  DecodeResult r = Decode(in, v, 100);
  ASSERT_EQ(r.status, DecodeStatus::kMessage) << r.error;
  EXPECT_EQ(v.caps, caps);
}

TEST(WireLimits, PayloadOneByteAboveTheMaximumIsRejectedFromTheHeaderAlone) {
  ExpectError(RawHeader(1, 101), "message payload of 101 bytes exceeds the maximum of 100", 100);
  ExpectError(RawHeader(2, static_cast<uint32_t>(kDefaultMaxPayload) + 1),
              "message payload of 67108865 bytes exceeds the maximum of 67108864");
}

TEST(WireLimits, DefaultMaximumIsSixtyFourMebibytesAndTheLimitItselfIsAccepted) {
  EXPECT_EQ(kDefaultMaxPayload, 67108864u);
  DecodeResult r =
      DecodePrefix(RawHeader(2, static_cast<uint32_t>(kDefaultMaxPayload)), kHeaderSize);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore) << r.error;
  EXPECT_EQ(r.size, kHeaderSize + kDefaultMaxPayload);
}

TEST(WireLimits, HugePayloadLengthsAreRejectedWithAClearMessage) {
  ExpectError(RawHeader(1, 100000000),
              "message payload of 100000000 bytes exceeds the maximum of 67108864");
  ExpectError(RawHeader(2, UINT32_MAX), "message payload of 4294967295 bytes exceeds");
}

TEST(WireLimits, PayloadLengthOfUint32MaxIsAcceptedOnlyWhenTheCallerAllowsIt) {
  DecodeResult r = DecodePrefix(RawHeader(2, UINT32_MAX), kHeaderSize, SIZE_MAX);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore) << r.error;
  EXPECT_EQ(r.size, kHeaderSize + size_t{UINT32_MAX});
}

TEST(WireLimits, ErrorTextLongerThanTheMaximumIsRejected) {
  ExpectError(RawMessage(4, Bytes(2 + kMaxErrorText + 1, 'e')),
              "ERROR payload of 1027 bytes exceeds");
}

// ---------------------------------------------------------------------------
// Malformed headers

TEST(WireMalformed, BadMagicIsRejectedAsSoonAsTheFirstWrongByteArrives) {
  for (size_t i = 0; i < 4; ++i) {
    Bytes msg = encode_eos();
    msg[i] ^= 0x20;  // "tLSF", "TlSF", ...
    for (size_t len = i + 1; len <= msg.size(); ++len) {
      DecodeResult r = DecodePrefix(msg, len);
      EXPECT_EQ(r.status, DecodeStatus::kError) << "byte " << i << " len " << len;
      EXPECT_EQ(r.error, "bad magic (not a tlsframe stream)");
    }
  }
  ExpectError(Bytes{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1'}, "bad magic");
}

TEST(WireMalformed, OtherProtocolVersionsAreRejectedOnceTheVersionByteArrives) {
  for (int version : {0, 2, 7, 255}) {
    Bytes msg = encode_eos();
    msg[4] = static_cast<uint8_t>(version);
    for (size_t len = 5; len <= msg.size(); ++len) {
      DecodeResult r = DecodePrefix(msg, len);
      EXPECT_EQ(r.status, DecodeStatus::kError) << "version " << version << " len " << len;
      EXPECT_EQ(r.error,
                "unsupported protocol version " + std::to_string(version) + " (expected 1)");
    }
  }
}

TEST(WireMalformed, MessageTypesZeroAndFiveToTwoFiftyFiveAreRejected) {
  for (int type = 0; type <= 255; ++type) {
    if (type >= 1 && type <= 4) continue;
    Bytes msg = RawHeader(static_cast<uint8_t>(type), 0);
    EXPECT_EQ(DecodePrefix(msg, 6).status, DecodeStatus::kError) << "type " << type;
    ExpectError(msg, "unknown message type " + std::to_string(type));
  }
}

TEST(WireMalformed, NonzeroReservedHeaderFieldIsRejected) {
  for (size_t i : {6, 7}) {
    for (uint8_t value : {0x01, 0x80, 0xFF}) {
      Bytes msg = encode_eos();
      msg[i] = value;
      EXPECT_EQ(DecodePrefix(msg, i + 1).status, DecodeStatus::kError) << "byte " << i;
      ExpectError(msg, "reserved header field");
    }
  }
}

TEST(WireMalformed, EosWithAPayloadIsRejectedFromTheHeaderAlone) {
  ExpectError(RawHeader(3, 1), "EOS message carries a 1-byte payload");
  ExpectError(RawMessage(3, {0, 0, 0, 0}), "EOS message");
}

TEST(WireMalformed, BufferShorterThanItsMetadataIsRejected) {
  for (uint32_t size = 0; size < kBufferMetaSize; ++size) {
    ExpectError(RawHeader(2, size), "shorter than its 48-byte metadata");
  }
}

TEST(WireMalformed, CapsWithAnEmptyPayloadIsRejected) {
  ExpectError(RawHeader(1, 0), "CAPS message has an empty payload");
}

TEST(WireMalformed, ErrorShorterThanItsCodeIsRejected) {
  ExpectError(RawHeader(4, 0), "shorter than its 2-byte code");
  ExpectError(RawMessage(4, {0}), "shorter than its 2-byte code");
}

TEST(WireMalformed, HeaderErrorsTakePrecedenceOverMissingPayload) {
  // Only the 12 header bytes are given; the payload would be needed for a
  // valid message, but the header already proves the message is bad.
  ExpectError(RawHeader(3, 5), "EOS message");
  ExpectError(RawHeader(2, 10), "metadata");
  ExpectError(RawHeader(4, 5000), "ERROR payload");
  ExpectError(RawHeader(1, 1000), "exceeds the maximum of 999", 999);
}

// ---------------------------------------------------------------------------
// Malformed payloads

TEST(WireMalformed, CapsContainingANulByteIsRejected) {
  ExpectError(RawMessage(1, {0}), "NUL byte at offset 0");
  ExpectError(RawMessage(1, {'v', 'i', 0, 'd'}), "NUL byte at offset 2");
  ExpectError(RawMessage(1, {'v', 'i', 'd', 0}), "NUL byte at offset 3");
}

TEST(WireMalformed, CapsLongerThanTheCapsLimitIsRejectedFromTheHeaderAlone) {
  ExpectError(RawHeader(1, static_cast<uint32_t>(kMaxCapsSize) + 1),
              "exceeds the maximum of 65536");
  const std::string at_limit(kMaxCapsSize, 'a');
  Exact ok(encode_caps(at_limit));
  MessageView view;
  EXPECT_EQ(decode(ok.data(), ok.size(), kDefaultMaxPayload, view).status, DecodeStatus::kMessage);
}

TEST(WireMalformed, CapsWithControlBytesAreRejected) {
  ExpectError(RawMessage(1, {'a', '\n', 'b'}), "control byte 0x0a at offset 1");
  ExpectError(RawMessage(1, {'a', 0x1b}), "control byte 0x1b");
  ExpectError(RawMessage(1, {0x7f}), "control byte 0x7f");
}

TEST(WireMalformed, CapsNestedDeeperThanTheLimitAreRejected) {
  std::string ok_caps =
      "a=" + std::string(kMaxCapsNesting, '{') + "1" + std::string(kMaxCapsNesting, '}');
  Exact ok(encode_caps(ok_caps));
  MessageView view;
  EXPECT_EQ(decode(ok.data(), ok.size(), kDefaultMaxPayload, view).status, DecodeStatus::kMessage);
  std::string deep = "a=" + std::string(kMaxCapsNesting + 1, '(') + "1";
  Bytes raw(deep.begin(), deep.end());
  ExpectError(RawMessage(1, raw), "nests deeper than " + std::to_string(kMaxCapsNesting) + " levels");
  // Closing brackets never take the depth below zero, so they cannot buy extra levels.
  std::string tricky = std::string(100, ')') + std::string(kMaxCapsNesting + 1, '[');
  ExpectError(RawMessage(1, Bytes(tricky.begin(), tricky.end())), "nests deeper");
}

TEST(WireMalformed, PayloadErrorsAreOnlyReportedOnceThePayloadHasArrived) {
  const Bytes msg = RawMessage(1, {'a', 'b', 0});
  EXPECT_EQ(DecodePrefix(msg, msg.size() - 1).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(DecodePrefix(msg, msg.size()).status, DecodeStatus::kError);
}

TEST(WireMalformed, EveryUnknownBufferFlagBitIsRejected) {
  for (int bit = 7; bit < 32; ++bit) {
    ExpectError(RawMessage(2, RawBufferPayload(1u << bit, 0, 0)), "unknown flag bits");
  }
  ExpectError(RawMessage(2, RawBufferPayload(kFlagDeltaUnit | 0x80u, 0, 3)), "0x00000080");
  Exact ok(RawMessage(2, RawBufferPayload(kKnownFlags, 0, 0)));
  EXPECT_EQ(DecodeWhole(ok).meta.flags, static_cast<uint32_t>(kKnownFlags));
}

TEST(WireMalformed, NonzeroBufferReservedFieldIsRejected) {
  ExpectError(RawMessage(2, RawBufferPayload(0, 1, 0)), "BUFFER reserved field is 0x00000001");
  ExpectError(RawMessage(2, RawBufferPayload(0, 0x80000000u, 4)), "reserved field");
}

TEST(WireMalformed, ExampleErrorMessagesReadAsSentences) {
  Bytes msg = encode_eos();
  msg[4] = 7;
  ExpectError(msg, "unsupported protocol version 7 (expected 1)");
  ExpectError(RawHeader(9, 0), "unknown message type 9");
  ExpectError(Bytes{'X'}, "bad magic (not a tlsframe stream)");
}

// ---------------------------------------------------------------------------
// Worked examples (the same bytes as docs/PROTOCOL.md)

TEST(WireWorkedExample, BufferMessageHasTheDocumentedBytes) {
  BufferMeta meta;
  meta.pts = 1'000'000'000;  // 1 s
  meta.dts = kNoTime;
  meta.duration = 33'333'333;
  meta.flags = kFlagDeltaUnit;
  meta.sequence = 42;
  meta.send_time_ns = 1'700'000'000'000'000'000;
  const uint8_t data[] = {0xDE, 0xAD, 0xBE, 0xEF};
  const Bytes expected = {
      0x54, 0x4C, 0x53, 0x46,                          // magic "TLSF"
      0x01,                                            // version 1
      0x02,                                            // type BUFFER
      0x00, 0x00,                                      // reserved
      0x00, 0x00, 0x00, 0x34,                          // payload length 52
      0x00, 0x00, 0x00, 0x00, 0x3B, 0x9A, 0xCA, 0x00,  // pts 1000000000
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,  // dts none
      0x00, 0x00, 0x00, 0x00, 0x01, 0xFC, 0xA0, 0x55,  // duration 33333333
      0x00, 0x00, 0x00, 0x01,                          // flags DELTA_UNIT
      0x00, 0x00, 0x00, 0x00,                          // reserved
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A,  // sequence 42
      0x17, 0x97, 0x9C, 0xFE, 0x36, 0x2A, 0x00, 0x00,  // send time 1700000000000000000
      0xDE, 0xAD, 0xBE, 0xEF,                          // data
  };
  EXPECT_EQ(encode_buffer(meta, data, sizeof data), expected);

  Exact in(expected);
  MessageView v = DecodeWhole(in);
  EXPECT_EQ(v.meta.pts, meta.pts);
  EXPECT_EQ(v.meta.dts, kNoTime);
  EXPECT_EQ(v.meta.duration, meta.duration);
  EXPECT_EQ(v.meta.flags, static_cast<uint32_t>(kFlagDeltaUnit));
  EXPECT_EQ(v.meta.sequence, 42u);
  EXPECT_EQ(v.meta.send_time_ns, meta.send_time_ns);
  EXPECT_EQ(Bytes(v.data, v.data + v.data_size), Bytes(data, data + 4));
}

TEST(WireWorkedExample, CapsMessageHasTheDocumentedBytes) {
  ASSERT_EQ(kJpegCaps.size(), 70u);
  Bytes expected = {0x54, 0x4C, 0x53, 0x46, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46};
  expected.insert(expected.end(), kJpegCaps.begin(), kJpegCaps.end());
  EXPECT_EQ(encode_caps(kJpegCaps), expected);
}

TEST(WireWorkedExample, EosAndErrorMessagesHaveTheDocumentedBytes) {
  EXPECT_EQ(encode_eos(), (Bytes{0x54, 0x4C, 0x53, 0x46, 0x01, 0x03, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(encode_error(ErrorCode::kServerFull, "full"),
            (Bytes{0x54, 0x4C, 0x53, 0x46, 0x01, 0x04, 0, 0, 0, 0, 0, 0x06, 0x00, 0x01, 'f', 'u',
                   'l', 'l'}));
}

// ---------------------------------------------------------------------------
// Garbage: the decoder is total and its results are self-consistent.

// Checks every promise a result makes about the input it came from.
void CheckResultIsConsistent(const Exact &in, size_t max, const DecodeResult &r,
                             const MessageView &v) {
  const uint8_t *begin = in.data();
  const uint8_t *end = in.data() + in.size();
  Header h;
  DecodeResult hr = parse_header(in.data(), in.size(), max, h);
  switch (r.status) {
    case DecodeStatus::kMessage: {
      ASSERT_GE(r.size, kHeaderSize);
      ASSERT_LE(r.size, in.size());
      ASSERT_EQ(hr.status, DecodeStatus::kMessage);
      ASSERT_EQ(hr.size, r.size);
      ASSERT_EQ(h.type, v.type);
      ASSERT_STRNE(message_type_name(v.type), "unknown");
      ASSERT_LE(r.size - kHeaderSize, max);
      if (v.type == MessageType::kCaps) {
        ASSERT_EQ(reinterpret_cast<const uint8_t *>(v.caps.data()), begin + kHeaderSize);
        ASSERT_EQ(kHeaderSize + v.caps.size(), r.size);
        ASSERT_FALSE(v.caps.empty());
        ASSERT_EQ(v.caps.find('\0'), std::string_view::npos);
      } else if (v.type == MessageType::kBuffer) {
        ASSERT_EQ(v.data, begin + kHeaderSize + kBufferMetaSize);
        ASSERT_EQ(kHeaderSize + kBufferMetaSize + v.data_size, r.size);
        ASSERT_LE(v.data + v.data_size, end);
        ASSERT_EQ(v.meta.flags & ~static_cast<uint32_t>(kKnownFlags), 0u);
      } else if (v.type == MessageType::kError) {
        ASSERT_LE(v.error_text.size(), kMaxErrorText);
        ASSERT_EQ(kHeaderSize + 2 + v.error_text.size(), r.size);
      } else {
        ASSERT_EQ(r.size, kHeaderSize);
      }
      break;
    }
    case DecodeStatus::kNeedMore:
      ASSERT_GE(r.size, kHeaderSize);
      ASSERT_GT(r.size, in.size());
      ASSERT_LE(r.size - kHeaderSize, max);
      break;
    case DecodeStatus::kError:
      ASSERT_FALSE(r.error.empty());
      ASSERT_NE(hr.status, DecodeStatus::kNeedMore) << "header was bad but decode said error";
      break;
  }
}

TEST(WireGarbage, RandomBytesAndMutatedMessagesNeverCrashAndGiveConsistentResults) {
  std::mt19937 rng(20240611);  // fixed seed: the same inputs on every run
  auto below = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<Bytes> samples = SampleMessages();
  const size_t limits[] = {0, 1, 47, 48, 64, 100, kDefaultMaxPayload, SIZE_MAX};
  int counts[3] = {0, 0, 0};

  for (int iter = 0; iter < 20000; ++iter) {
    Bytes b;
    if (iter % 2 == 0) {
      b.resize(below(96));
      for (uint8_t &x : b) x = static_cast<uint8_t>(rng());
      // Often start with a valid prefix so the garbage reaches deeper checks.
      const size_t keep = below(kHeaderSize + 1);
      const Bytes header =
          RawHeader(static_cast<uint8_t>(1 + below(4)), static_cast<uint32_t>(below(80)));
      for (size_t i = 0; i < keep && i < b.size(); ++i) b[i] = header[i];
    } else {
      b = samples[below(samples.size())];
      for (size_t m = 1 + below(3); m > 0; --m) {
        switch (below(5)) {
          case 0:  // flip one bit
            if (!b.empty()) b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
            break;
          case 1:  // overwrite one byte
            if (!b.empty()) b[below(b.size())] = static_cast<uint8_t>(rng());
            break;
          case 2:  // truncate
            b.resize(below(b.size() + 1));
            break;
          case 3:  // append garbage
            for (size_t n = below(16); n > 0; --n) b.push_back(static_cast<uint8_t>(rng()));
            break;
          case 4:  // rewrite the payload length
            if (b.size() >= kHeaderSize) {
              const uint32_t len =
                  below(2) ? static_cast<uint32_t>(rng()) : static_cast<uint32_t>(below(120));
              for (int i = 0; i < 4; ++i) b[8 + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
            }
            break;
        }
      }
    }
    const size_t max = limits[below(sizeof limits / sizeof limits[0])];
    Exact in(b);
    MessageView v;
    DecodeResult r = decode(in.data(), in.size(), max, v);
    ++counts[static_cast<int>(r.status)];
    CheckResultIsConsistent(in, max, r, v);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "iteration " << iter << ", input of " << in.size() << " bytes, max " << max;
      return;
    }
  }
  // The generator must exercise all three outcomes, or the loop proves little.
  EXPECT_GT(counts[static_cast<int>(DecodeStatus::kMessage)], 500);
  EXPECT_GT(counts[static_cast<int>(DecodeStatus::kNeedMore)], 500);
  EXPECT_GT(counts[static_cast<int>(DecodeStatus::kError)], 500);
}

// check_caps is what decode() applies to a CAPS payload; a sender uses it on
// what it is about to send (tlsframesink's set_caps).
TEST(CheckCaps, AgreesWithTheDecoderOnWhatIsAcceptable) {
  const std::string deep_max = "a/b, x=" + std::string(kMaxCapsNesting, '<') + "1" + std::string(kMaxCapsNesting, '>');
  const std::string deep_over =
      "a/b, x=" + std::string(kMaxCapsNesting + 1, '<') + "1" + std::string(kMaxCapsNesting + 1, '>');
  const std::string cases[] = {"video/x-raw",
                               deep_max,
                               deep_over,
                               std::string("a/b\x01"),
                               std::string(kMaxCapsSize, 'a'),
                               std::string(kMaxCapsSize + 1, 'a'),
                               ""};
  for (const std::string &caps : cases) {
    SCOPED_TRACE(caps.substr(0, 40));
    DecodeResult checked = check_caps(caps);
    if (caps.empty()) {
      EXPECT_EQ(checked.status, DecodeStatus::kError);
      continue;
    }
    Bytes msg = RawHeader(1, static_cast<uint32_t>(caps.size()));
    msg.insert(msg.end(), caps.begin(), caps.end());
    MessageView v;
    DecodeResult decoded = decode(msg.data(), msg.size(), kDefaultMaxPayload, v);
    EXPECT_EQ(checked.status, decoded.status);
    EXPECT_EQ(checked.error, decoded.error);
  }
  EXPECT_EQ(check_caps(deep_max).status, DecodeStatus::kMessage);
  EXPECT_NE(check_caps(deep_over).error.find("nests deeper than " + std::to_string(kMaxCapsNesting) + " levels"),
            std::string::npos);
}

// ---------------------------------------------------------------------------
// MessageReader: memory follows the bytes received, not the length announced
// (issue 14, item 6).

// Feeds bytes to a reader the way the receiver does: into prepare(), at most
// prepare().size at a time, in pieces of at most `piece` bytes.
DecodeResult Feed(MessageReader &reader, const Bytes &bytes, size_t piece, size_t *used) {
  DecodeResult r;
  size_t at = 0;
  while (at < bytes.size()) {
    MessageReader::Space space = reader.prepare();
    if (space.size == 0) {
      r.status = DecodeStatus::kError;
      return r;
    }
    size_t n = std::min({space.size, piece, bytes.size() - at});
    std::memcpy(space.data, bytes.data() + at, n);
    at += n;
    r = reader.commit(n);
    if (r.status != DecodeStatus::kNeedMore) break;
  }
  *used = at;
  return r;
}

TEST(MessageReader, AnnouncedLengthAllocatesNothingUntilTheBytesArrive) {
  MessageReader reader(kDefaultMaxPayload);
  constexpr uint32_t kAnnounced = 64u * 1024u * 1024u;
  Bytes sent = RawHeader(2, kAnnounced);
  sent.resize(sent.size() + kBufferMetaSize + 100, 0);
  size_t used = 0;
  DecodeResult r = Feed(reader, sent, 4096, &used);
  EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
  EXPECT_EQ(used, sent.size());
  EXPECT_EQ(r.size, kHeaderSize + kAnnounced);
  EXPECT_EQ(reader.received(), sent.size());
  // The receiver's next read asks for one more chunk, not for the 64 MiB.
  MessageReader::Space space = reader.prepare();
  EXPECT_GT(space.size, 0u);
  EXPECT_LE(space.size, kReadChunk);
  EXPECT_LE(reader.capacity(), kHeaderSize + kReadChunk);
}

TEST(MessageReader, ReassemblesMessagesOfAnySizeFromAnyPiecesWithoutSlack) {
  const size_t sizes[] = {0, 1, 1000, kReadChunk - 1, kReadChunk, 3 * kReadChunk + 17};
  MessageReader reader(kDefaultMaxPayload);
  for (size_t piece : {size_t{1} << 20, size_t{1000}, size_t{7}}) {
    for (size_t size : sizes) {
      if (piece == 7 && size > 100000) continue;  // byte-sized pieces: small messages only
      SCOPED_TRACE("size " + std::to_string(size) + ", pieces of " + std::to_string(piece));
      BufferMeta meta;
      meta.pts = size;
      Bytes data(size);
      for (size_t i = 0; i < size; ++i) data[i] = static_cast<uint8_t>(i * 13 + size);
      Bytes msg = encode_buffer(meta, data.data(), data.size());
      size_t used = 0;
      DecodeResult r = Feed(reader, msg, piece, &used);
      ASSERT_EQ(r.status, DecodeStatus::kMessage) << r.error;
      EXPECT_EQ(r.size, msg.size());
      EXPECT_EQ(used, msg.size());
      EXPECT_EQ(reader.capacity(), msg.size()) << "slack left after the whole message";
      std::shared_ptr<Bytes> got = reader.take();
      ASSERT_TRUE(got);
      EXPECT_EQ(*got, msg);
      EXPECT_EQ(reader.capacity(), 0u);
      EXPECT_EQ(reader.received(), 0u);
    }
  }
}

TEST(MessageReader, BadHeaderAndOversizedLengthAreErrorsAtTheHeader) {
  {
    MessageReader reader(kDefaultMaxPayload);
    Bytes bad = RawHeader(2, 100);
    bad[0] = 'X';
    size_t used = 0;
    DecodeResult r = Feed(reader, bad, 1, &used);
    EXPECT_EQ(r.status, DecodeStatus::kError);
    EXPECT_EQ(used, 1u) << "rejected on the first wrong byte";
  }
  {
    MessageReader reader(1000);
    size_t used = 0;
    DecodeResult r = Feed(reader, RawHeader(2, 1001), 64, &used);
    EXPECT_EQ(r.status, DecodeStatus::kError);
    EXPECT_NE(r.error.find("exceeds the maximum of 1000"), std::string::npos) << r.error;
  }
}

}  // namespace
}  // namespace tlsframe::wire
