// tlsframe protocol v2 field blocks: the extensible key/value lists that
// HELLO, WELCOME and each STREAM_LIST entry carry (docs/PROTOCOL.md, "Field
// blocks"). Pure code: no I/O; reading never allocates and is total on every
// input. A reader ignores keys it does not know: that is how later versions
// add fields (a rendition choice, say) without a new protocol version.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace tlsframe::wire {

// key length (u8) key, value length (u16, big-endian) value
inline constexpr size_t kMaxKeySize = 32;       // keys are 1..32 bytes of [a-z0-9-]
inline constexpr size_t kMaxFields = 64;        // fields in one block
inline constexpr size_t kMaxFieldBlock = 4096;  // bytes in one block
inline constexpr size_t kMaxStreamName = 64;    // stream names are 1..64 bytes

// One key/value pair; views into someone else's bytes.
struct Field {
  std::string_view key;
  std::string_view value;
};

// A field block that check_field_block() accepted, read in place. Only
// check_field_block() fills one; the default is the empty block.
struct FieldBlock {
  const uint8_t *data = nullptr;  // the block's first byte (points into the message)
  size_t size = 0;                // bytes in the block
  size_t count = 0;               // fields in the block

  // The value of `key`, or nullopt when the block has no such field.
  std::optional<std::string_view> find(std::string_view key) const;
  // Iteration in wire order: start with offset 0; false after the last field.
  bool next(size_t &offset, Field &out) const;
};

// A STREAM_LIST payload that check_stream_list() accepted: `count` entries,
// each a u16 block length then a field block.
struct StreamListView {
  const uint8_t *data = nullptr;  // the first entry (just after the u16 count)
  size_t size = 0;                // bytes of all entries
  size_t count = 0;               // entries

  // Iteration in wire order: start with offset 0; false after the last entry.
  bool next(size_t &offset, FieldBlock &out) const;
};

// The outcome of a check: ok, or why not, formatted without allocating.
struct Verdict {
  bool ok = true;
  char why[192] = {};
  explicit operator bool() const { return ok; }
};

#if defined(__GNUC__)
#define TLSF_WIRE_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define TLSF_WIRE_PRINTF(fmt_index, first_arg)
#endif
// A failed Verdict whose reason is printf-formatted into why (cut to fit).
Verdict refused(const char *fmt, ...) TLSF_WIRE_PRINTF(1, 2);

// The big-endian u16 at p (field value lengths, STREAM_LIST counts and block lengths).
inline uint16_t get_be16(const uint8_t *p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

// Checks bytes[0..len) as one field block: at most kMaxFieldBlock bytes and
// kMaxFields fields, each key 1..32 bytes of [a-z0-9-], each value valid
// text (valid_text()), no key twice, no byte left over. On success fills out.
Verdict check_field_block(const uint8_t *bytes, size_t len, FieldBlock &out);

// Appends the block for `fields` (in order) to out. False, leaving out
// unchanged, when check_field_block() would refuse the result.
bool append_field_block(const std::vector<Field> &fields, std::vector<uint8_t> &out);

// True for a key of 1..kMaxKeySize bytes of [a-z0-9-].
bool valid_key(std::string_view key);

// True for well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF) with no control byte (0x00-0x1F, 0x7F). On false,
// *bad_offset (when given) is the offset of the first byte at fault.
bool valid_text(std::string_view text, size_t *bad_offset = nullptr);

// The one stream-name rule, for every layer (properties, HELLO, STREAM_LIST):
// 1..kMaxStreamName bytes of [A-Za-z0-9._-], not starting with '.'.
// The empty name is not a name: in a HELLO it asks for the default stream.
bool valid_stream_name(std::string_view name);

// A rendition's name (the sink's `rendition`, HELLO's and RENDITION's
// `rendition`): the stream-name rule, and never "auto", which in a HELLO or
// RENDITION_REQUEST asks for the server's automatic choice.
inline constexpr std::string_view kRenditionAuto = "auto";
bool valid_rendition_name(std::string_view name);

// Reads canonical decimal text (1..10 digits, no sign, no leading zero
// except "0" itself) that fits in 32 bits.
bool parse_decimal_u32(std::string_view text, uint32_t &out);

}  // namespace tlsframe::wire
