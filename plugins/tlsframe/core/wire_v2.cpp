// tlsframe protocol version 2: ALPN selection, the v2-only messages and
// their payload checks. Encoders check what they built with the decoder's
// own check, so the two can never disagree.
#include "core/wire_v2.h"

#include <cstdio>
#include <cstring>

namespace tlsframe::wire {
namespace {

constexpr size_t kCountSize = 2;        // STREAM_LIST: u16 entry count
constexpr size_t kBlockLengthSize = 2;  // STREAM_LIST: u16 length before each entry

bool stream_value_ok(std::string_view v) {
  return v.empty() || valid_stream_name(v);
}

// For an error text: the value itself when short and printable, else a
// placeholder (values are valid UTF-8 without control bytes by now).
int shown_size(std::string_view v) {
  return static_cast<int>(v.size() < 64 ? v.size() : 64);
}

// Cuts text to at most max bytes without splitting a UTF-8 sequence.
std::string_view cut_utf8(std::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

// text with every byte at fault (control bytes, invalid UTF-8) replaced by '?'.
std::string as_text(std::string_view text) {
  std::string out(text);
  size_t from = 0;
  size_t bad = 0;
  // Each pass fixes one byte and moves past it: at most out.size() passes.
  while (from < out.size() && !valid_text(std::string_view(out).substr(from), &bad)) {
    out[from + bad] = '?';
    from += bad + 1;
  }
  return out;
}

// Header (version 2) + field block, checked by `check`; empty when refused.
std::vector<uint8_t> encode_fields_message(MessageType type, const std::vector<Field> &fields,
                                           Verdict (*check)(const uint8_t *, size_t,
                                                            MessageView &)) {
  std::vector<uint8_t> msg(kHeaderSize);
  if (!append_field_block(fields, msg)) return {};
  const size_t payload = msg.size() - kHeaderSize;
  MessageView view;
  if (payload == 0 || !check(msg.data() + kHeaderSize, payload, view)) return {};
  write_header(msg.data(), type, static_cast<uint32_t>(payload), Version::kV2);
  return msg;
}

std::vector<uint8_t> encode_empty(MessageType type) {
  std::vector<uint8_t> msg(kHeaderSize);
  write_header(msg.data(), type, 0, Version::kV2);
  return msg;
}

// Checks one STREAM_LIST entry's field block and reads its known fields.
Verdict check_entry(const FieldBlock &block, size_t index, StreamEntry &out) {
  const auto name = block.find("name");
  const auto caps = block.find("caps");
  const auto viewers = block.find("viewers");
  if (!name) return refused("entry %zu has no `name` field", index);
  if (!stream_value_ok(*name))
    return refused("entry %zu has an invalid stream name \"%.*s\"", index, shown_size(*name),
                   name->data());
  if (!caps) return refused("entry %zu has no `caps` field", index);
  if (caps->size() > kMaxCapsSummary)
    return refused("entry %zu has a caps summary of %zu bytes (at most %zu)", index, caps->size(),
                   kMaxCapsSummary);
  if (!viewers) return refused("entry %zu has no `viewers` field", index);
  uint32_t n = 0;
  if (!parse_decimal_u32(*viewers, n))
    return refused("entry %zu has `viewers` that is not a canonical decimal number", index);
  out.name = *name;
  out.caps = *caps;
  out.viewers = n;
  out.fields = block;
  return Verdict{};
}

// A `renditions` list: names separated by single commas, each valid.
bool rendition_list_ok(std::string_view text) {
  if (text.empty()) return false;
  size_t from = 0;
  for (;;) {
    const size_t comma = text.find(',', from);
    const std::string_view name = text.substr(from, comma == std::string_view::npos ? text.npos
                                                                                    : comma - from);
    if (!valid_rendition_name(name)) return false;
    if (comma == std::string_view::npos) return true;
    from = comma + 1;
  }
}

// `rendition` where a name or "auto" is allowed.
bool rendition_choice_ok(std::string_view v) {
  return v == kRenditionAuto || valid_rendition_name(v);
}

// The `stream` field every HELLO and WELCOME carries: present, a valid name.
Verdict required_stream(const FieldBlock &block, std::string_view &out) {
  const auto stream = block.find("stream");
  if (!stream) return refused("no `stream` field (it is required; \"\" = the default stream)");
  if (!stream_value_ok(*stream))
    return refused(
        "invalid stream name \"%.*s\" (1..%zu bytes of [A-Za-z0-9._-], not starting "
        "with '.')",
        shown_size(*stream), stream->data(), kMaxStreamName);
  out = *stream;
  return Verdict{};
}

// A `rendition` field: a name, or also "auto" where the client states a
// choice (auto_ok); absent is fine unless required (out stays empty).
Verdict take_rendition(const FieldBlock &block, bool required, bool auto_ok,
                       std::string_view &out) {
  const auto r = block.find("rendition");
  if (!r) {
    if (!required) return Verdict{};
    return refused(auto_ok ? "no `rendition` field (it is required: a name or \"auto\")"
                           : "no `rendition` field (it is required)");
  }
  if (auto_ok ? !rendition_choice_ok(*r) : !valid_rendition_name(*r))
    return refused("invalid `rendition` \"%.*s\" (%sa name of 1..%zu bytes of [A-Za-z0-9._-], "
                   "not starting with '.')",
                   shown_size(*r), r->data(), auto_ok ? "\"auto\" or " : "", kMaxStreamName);
  out = *r;
  return Verdict{};
}

}  // namespace

AlpnSelection select_alpn(const uint8_t *offered, size_t size, bool http_enabled) {
  AlpnSelection v2, http;
  if (offered == nullptr) return AlpnSelection{};
  size_t off = 0;
  while (off < size) {
    const size_t n = offered[off];
    // A zero-length name or one running past the end makes the list malformed.
    if (n == 0 || size - off - 1 < n) return AlpnSelection{};
    const std::string_view name(reinterpret_cast<const char *>(offered + off + 1), n);
    if (name == kAlpnV2 && v2.protocol == nullptr) {
      v2 = AlpnSelection{AlpnChoice::kV2, offered + off + 1, static_cast<uint8_t>(n)};
    } else if (http_enabled && name == kAlpnHttp && http.protocol == nullptr) {
      http = AlpnSelection{AlpnChoice::kHttp, offered + off + 1, static_cast<uint8_t>(n)};
    }
    off += 1 + n;
  }
  if (v2.protocol != nullptr) return v2;
  if (http.protocol != nullptr) return http;
  return AlpnSelection{};
}

Verdict check_hello(const uint8_t *payload, size_t size, MessageView &out) {
  FieldBlock block;
  std::string_view stream, rendition;
  Verdict v = check_field_block(payload, size, block);
  if (v) v = required_stream(block, stream);
  if (v) v = take_rendition(block, false, true, rendition);
  if (!v) return v;
  out.fields = block;
  out.stream = stream;
  out.rendition = rendition;
  return Verdict{};
}

Verdict check_welcome(const uint8_t *payload, size_t size, MessageView &out) {
  FieldBlock block;
  Verdict v = check_field_block(payload, size, block);
  if (!v) return v;
  std::string_view stream, rendition;
  if (Verdict s = required_stream(block, stream); !s) return s;
  const auto server = block.find("server");
  if (!server) return refused("no `server` field (it is required)");
  if (server->size() > kMaxServerText)
    return refused("`server` of %zu bytes (at most %zu)", server->size(), kMaxServerText);
  uint32_t interval = 0;
  if (const auto text = block.find("keyframe-interval-ms")) {
    if (!parse_decimal_u32(*text, interval))
      return refused("`keyframe-interval-ms` is not a canonical decimal number");
  }
  if (Verdict r = take_rendition(block, false, false, rendition); !r) return r;
  if (const auto list = block.find("renditions")) {
    if (!rendition_list_ok(*list))
      return refused("`renditions` is not a comma-separated list of rendition names");
  }
  out.fields = block;
  out.stream = stream;
  out.server = *server;
  out.keyframe_interval_ms = interval;
  out.rendition = rendition;
  return Verdict{};
}

Verdict check_rendition_request(const uint8_t *payload, size_t size, MessageView &out) {
  FieldBlock block;
  Verdict v = check_field_block(payload, size, block);
  if (!v) return v;
  std::string_view rendition;
  if (Verdict r = take_rendition(block, true, true, rendition); !r) return r;
  out.fields = block;
  out.rendition = rendition;
  return Verdict{};
}

Verdict check_rendition(const uint8_t *payload, size_t size, MessageView &out) {
  FieldBlock block;
  Verdict v = check_field_block(payload, size, block);
  if (!v) return v;
  std::string_view rendition, reason;
  if (Verdict r = take_rendition(block, true, false, rendition); !r) return r;
  if (const auto text = block.find("reason")) {
    if (text->size() > kMaxRenditionReason)
      return refused("`reason` of %zu bytes (at most %zu)", text->size(), kMaxRenditionReason);
    reason = *text;
  }
  out.fields = block;
  out.rendition = rendition;
  out.reason = reason;
  return Verdict{};
}

std::vector<std::string> rendition_list(std::string_view text) {
  std::vector<std::string> out;
  if (!rendition_list_ok(text)) return out;
  size_t from = 0;
  for (;;) {
    const size_t comma = text.find(',', from);
    out.emplace_back(text.substr(from, comma == std::string_view::npos ? text.npos : comma - from));
    if (comma == std::string_view::npos) return out;
    from = comma + 1;
  }
}

std::string join_rendition_list(const std::vector<std::string> &names) {
  std::string out;
  for (const std::string &n : names) {
    if (!out.empty()) out += ',';
    out += n;
  }
  return out;
}

Verdict check_stream_list(const uint8_t *payload, size_t size, StreamListView &out) {
  if (payload == nullptr || size < kCountSize)
    return refused("payload of %zu bytes has no room for its count", size);
  if (size > kMaxStreamListPayload)
    return refused("payload of %zu bytes exceeds the maximum of %zu", size, kMaxStreamListPayload);
  const size_t count = get_be16(payload);
  if (count > kMaxStreamListEntries)
    return refused("%zu entries (at most %zu)", count, kMaxStreamListEntries);
  const uint8_t *entries = payload + kCountSize;
  const size_t entries_size = size - kCountSize;
  size_t off = 0;
  for (size_t i = 0; i < count; ++i) {
    if (entries_size - off < kBlockLengthSize)
      return refused("entry %zu of %zu: no room for its length", i, count);
    const size_t block_size = get_be16(entries + off);
    off += kBlockLengthSize;
    if (entries_size - off < block_size)
      return refused("entry %zu of %zu runs past the end of the payload", i, count);
    FieldBlock block;
    Verdict v = check_field_block(entries + off, block_size, block);
    if (!v) return refused("entry %zu: %s", i, v.why);
    StreamEntry entry;
    v = check_entry(block, i, entry);
    if (!v) return v;
    off += block_size;
  }
  if (off != entries_size)
    return refused("%zu bytes after the last of %zu entries", entries_size - off, count);
  out.data = entries;
  out.size = entries_size;
  out.count = count;
  return Verdict{};
}

std::vector<uint8_t> encode_hello(const std::vector<Field> &fields) {
  return encode_fields_message(MessageType::kHello, fields, check_hello);
}

std::vector<uint8_t> encode_welcome(const std::vector<Field> &fields) {
  return encode_fields_message(MessageType::kWelcome, fields, check_welcome);
}

std::vector<uint8_t> encode_welcome(std::string_view stream, std::string_view server,
                                    uint32_t keyframe_interval_ms) {
  const std::string interval = std::to_string(keyframe_interval_ms);
  std::vector<Field> fields = {{"stream", stream}, {"server", server}};
  if (keyframe_interval_ms != 0) fields.push_back({"keyframe-interval-ms", interval});
  return encode_welcome(fields);
}

std::vector<uint8_t> encode_keyframe_request() {
  return encode_empty(MessageType::kKeyframeRequest);
}

std::vector<uint8_t> encode_rendition_request(const std::vector<Field> &fields) {
  return encode_fields_message(MessageType::kRenditionRequest, fields, check_rendition_request);
}

std::vector<uint8_t> encode_rendition(const std::vector<Field> &fields) {
  return encode_fields_message(MessageType::kRendition, fields, check_rendition);
}

std::vector<uint8_t> encode_rendition_request(std::string_view rendition) {
  return encode_rendition_request(std::vector<Field>{{"rendition", rendition}});
}

std::vector<uint8_t> encode_rendition(std::string_view rendition, std::string_view reason) {
  std::vector<Field> fields = {{"rendition", rendition}};
  if (!reason.empty()) fields.push_back({"reason", reason});
  return encode_rendition(fields);
}

std::vector<uint8_t> encode_list_streams() {
  return encode_empty(MessageType::kListStreams);
}

std::vector<uint8_t> encode_stream_list_entries(const std::vector<std::vector<Field>> &entries) {
  if (entries.size() > kMaxStreamListEntries) return {};
  std::vector<uint8_t> msg(kHeaderSize + kCountSize);
  for (const std::vector<Field> &fields : entries) {
    const size_t at = msg.size();
    msg.resize(at + kBlockLengthSize);
    if (!append_field_block(fields, msg)) return {};
    const size_t block_size = msg.size() - at - kBlockLengthSize;
    msg[at] = static_cast<uint8_t>(block_size >> 8);
    msg[at + 1] = static_cast<uint8_t>(block_size);
    if (msg.size() - kHeaderSize > kMaxStreamListPayload) return {};
  }
  const size_t payload = msg.size() - kHeaderSize;
  msg[kHeaderSize] = static_cast<uint8_t>(entries.size() >> 8);
  msg[kHeaderSize + 1] = static_cast<uint8_t>(entries.size());
  StreamListView view;
  if (!check_stream_list(msg.data() + kHeaderSize, payload, view)) return {};
  write_header(msg.data(), MessageType::kStreamList, static_cast<uint32_t>(payload), Version::kV2);
  return msg;
}

std::vector<uint8_t> encode_stream_list(const std::vector<StreamSummary> &streams) {
  std::vector<uint8_t> msg(kHeaderSize + kCountSize);
  size_t count = 0;
  for (const StreamSummary &s : streams) {
    if (count == kMaxStreamListEntries) break;
    if (!stream_value_ok(s.name)) continue;
    const std::string caps = as_text(cut_utf8(s.caps, kMaxCapsSummary));
    const std::string viewers = std::to_string(s.viewers);
    const std::vector<Field> fields = {{"name", s.name}, {"caps", caps}, {"viewers", viewers}};
    const size_t at = msg.size();
    msg.resize(at + kBlockLengthSize);
    if (!append_field_block(fields, msg)) {  // not reached: every value is valid by now
      msg.resize(at);
      continue;
    }
    if (msg.size() - kHeaderSize > kMaxStreamListPayload) {
      msg.resize(at);
      break;
    }
    const size_t block_size = msg.size() - at - kBlockLengthSize;
    msg[at] = static_cast<uint8_t>(block_size >> 8);
    msg[at + 1] = static_cast<uint8_t>(block_size);
    ++count;
  }
  const size_t payload = msg.size() - kHeaderSize;
  msg[kHeaderSize] = static_cast<uint8_t>(count >> 8);
  msg[kHeaderSize + 1] = static_cast<uint8_t>(count);
  write_header(msg.data(), MessageType::kStreamList, static_cast<uint32_t>(payload), Version::kV2);
  return msg;
}

bool next_stream(const StreamListView &list, size_t &offset, StreamEntry &out) {
  FieldBlock block;
  size_t at = offset;
  if (!list.next(at, block)) return false;
  StreamEntry entry;
  if (!check_entry(block, 0, entry)) return false;  // only for a list decode() did not accept
  out = entry;
  offset = at;
  return true;
}

std::string forbidden_reason(std::string_view stream) {
  // A valid stream name is at most 64 bytes: this always fits kMaxErrorText.
  return "forbidden: this client may not watch " +
         (stream.empty() ? std::string("the default stream")
                         : "stream \"" + std::string(stream) + "\"");
}

std::string no_such_stream_reason(std::string_view requested,
                                  const std::vector<std::string> &names) {
  std::string out;
  if (requested.empty()) {
    out = "no default stream";
  } else if (valid_stream_name(requested)) {
    out = "no stream named \"" + std::string(requested) + "\"";
  } else {
    out = "no such stream";
  }
  if (names.empty()) return out + "; the server has no streams";
  out += "; streams:";
  constexpr std::string_view kMore = " ...";
  size_t listed = 0;
  for (const std::string &name : names) {
    const std::string shown = name.empty() ? "\"\" (default)" : as_text(name);
    const size_t need = 1 + shown.size() + (listed + 1 < names.size() ? 1 : 0);
    if (out.size() + need + kMore.size() > kMaxErrorText) {
      out += kMore;
      return out;
    }
    out += ' ';
    out += shown;
    if (listed + 1 < names.size()) out += ',';
    ++listed;
  }
  return out;
}

}  // namespace tlsframe::wire
