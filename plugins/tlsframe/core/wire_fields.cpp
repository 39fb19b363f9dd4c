// tlsframe protocol v2 field blocks. Lengths are read one byte at a time,
// most significant first; every read is bounds-checked against the block.
#include "core/wire_fields.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace tlsframe::wire {
namespace {

constexpr size_t kKeyLengthSize = 1;
constexpr size_t kValueLengthSize = 2;
constexpr size_t kMaxValueSize = UINT16_MAX;

std::string_view view_of(const uint8_t *p, size_t n) {
  return std::string_view(reinterpret_cast<const char *>(p), n);
}

// Reads the field at `offset` of a block already validated (or being
// validated, with `avail` bounding what may be read). Returns the offset just
// past it, or 0 when it does not fit in avail (a field is never 0 bytes).
size_t read_field(const uint8_t *data, size_t avail, size_t offset, Field &out) {
  if (avail - offset < kKeyLengthSize) return 0;
  const size_t key_size = data[offset];
  const size_t key_at = offset + kKeyLengthSize;
  if (avail - key_at < key_size + kValueLengthSize) return 0;
  const size_t value_size = get_be16(data + key_at + key_size);
  const size_t value_at = key_at + key_size + kValueLengthSize;
  if (avail - value_at < value_size) return 0;
  out.key = view_of(data + key_at, key_size);
  out.value = view_of(data + value_at, value_size);
  return value_at + value_size;
}

bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

Verdict refused(const char *fmt, ...) {
  Verdict v;
  v.ok = false;
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(v.why, sizeof v.why, fmt, args);
  va_end(args);
  return v;
}

std::optional<std::string_view> FieldBlock::find(std::string_view key) const {
  size_t offset = 0;
  Field f;
  while (next(offset, f)) {
    if (f.key == key) return f.value;
  }
  return std::nullopt;
}

bool FieldBlock::next(size_t &offset, Field &out) const {
  if (data == nullptr || offset >= size) return false;
  const size_t after = read_field(data, size, offset, out);
  if (after == 0) return false;  // only for a block check_field_block() did not make
  offset = after;
  return true;
}

bool StreamListView::next(size_t &offset, FieldBlock &out) const {
  if (data == nullptr || offset + kValueLengthSize > size) return false;
  const size_t block_size = get_be16(data + offset);
  const size_t at = offset + kValueLengthSize;
  if (size - at < block_size) return false;
  FieldBlock block;
  if (!check_field_block(data + at, block_size, block)) return false;
  out = block;
  offset = at + block_size;
  return true;
}

bool valid_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeySize) return false;
  for (char c : key) {
    if (!key_char(c)) return false;
  }
  return true;
}

bool valid_text(std::string_view text, size_t *bad_offset) {
  const auto *s = reinterpret_cast<const uint8_t *>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = s[i];
    size_t extra = 0;
    uint8_t lo = 0x80, hi = 0xBF;  // range of the first continuation byte
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7F) break;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;  // no overlong forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      break;  // 0x80-0xC1 (continuation or overlong lead), 0xF5-0xFF
    }
    if (n - i - 1 < extra) break;
    bool ok = true;
    for (size_t k = 1; k <= extra && ok; ++k) {
      const uint8_t b = s[i + k];
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (!ok) break;
    i += 1 + extra;
  }
  if (i == n) return true;
  if (bad_offset != nullptr) *bad_offset = i;
  return false;
}

bool valid_stream_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxStreamName || name[0] == '.') return false;
  for (char c : name) {
    if (!name_char(c)) return false;
  }
  return true;
}

bool valid_rendition_name(std::string_view name) {
  return valid_stream_name(name) && name != kRenditionAuto;
}

bool parse_decimal_u32(std::string_view text, uint32_t &out) {
  if (text.empty() || text.size() > 10 || (text.size() > 1 && text[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

Verdict check_field_block(const uint8_t *bytes, size_t len, FieldBlock &out) {
  if (len > kMaxFieldBlock)
    return refused("field block of %zu bytes exceeds the maximum of %zu", len, kMaxFieldBlock);
  if (bytes == nullptr && len != 0) return refused("field block has no bytes");
  size_t offset = 0;
  size_t count = 0;
  while (offset < len) {
    if (count == kMaxFields) return refused("field block has more than %zu fields", kMaxFields);
    Field f;
    const size_t key_size = bytes[offset];
    if (key_size == 0) return refused("field %zu has an empty key", count);
    if (key_size > kMaxKeySize)
      return refused("field %zu has a key of %zu bytes (at most %zu)", count, key_size,
                     kMaxKeySize);
    const size_t after = read_field(bytes, len, offset, f);
    if (after == 0) return refused("field %zu runs past the end of its block", count);
    if (!valid_key(f.key))
      return refused("field %zu has a key with a byte outside [a-z0-9-]", count);
    size_t bad = 0;
    if (!valid_text(f.value, &bad))
      return refused("field \"%.*s\" has a control byte or invalid UTF-8 at value offset %zu",
                     static_cast<int>(f.key.size()), f.key.data(), bad);
    // Duplicates: compare with every earlier key (at most kMaxFields^2 / 2).
    size_t earlier = 0;
    Field e;
    while (earlier < offset) {
      const size_t next = read_field(bytes, offset, earlier, e);
      if (next == 0) break;
      if (e.key == f.key)
        return refused("field \"%.*s\" appears twice", static_cast<int>(f.key.size()),
                       f.key.data());
      earlier = next;
    }
    offset = after;
    ++count;
  }
  out.data = bytes;
  out.size = len;
  out.count = count;
  return Verdict{};
}

bool append_field_block(const std::vector<Field> &fields, std::vector<uint8_t> &out) {
  if (fields.size() > kMaxFields) return false;
  size_t total = 0;
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field &f = fields[i];
    if (!valid_key(f.key) || f.value.size() > kMaxValueSize || !valid_text(f.value)) return false;
    for (size_t j = 0; j < i; ++j) {
      if (fields[j].key == f.key) return false;
    }
    total += kKeyLengthSize + f.key.size() + kValueLengthSize + f.value.size();
    if (total > kMaxFieldBlock) return false;
  }
  const size_t start = out.size();
  out.resize(start + total);
  uint8_t *p = out.data() + start;
  for (const Field &f : fields) {
    *p++ = static_cast<uint8_t>(f.key.size());
    std::memcpy(p, f.key.data(), f.key.size());
    p += f.key.size();
    *p++ = static_cast<uint8_t>(f.value.size() >> 8);
    *p++ = static_cast<uint8_t>(f.value.size());
    if (!f.value.empty()) std::memcpy(p, f.value.data(), f.value.size());
    p += f.value.size();
  }
  return true;
}

}  // namespace tlsframe::wire
