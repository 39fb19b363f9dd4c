// Core logging -> GStreamer debug categories, and the helpers in common.h.
#include <gst/gst.h>

#include "core/log.h"
#include "gst/common.h"

GST_DEBUG_CATEGORY(tlsframe_sink_debug);
GST_DEBUG_CATEGORY(tlsframe_src_debug);
GST_DEBUG_CATEGORY_STATIC(tlsframe_tls_debug);
GST_DEBUG_CATEGORY_STATIC(tlsframe_server_debug);
GST_DEBUG_CATEGORY_STATIC(tlsframe_receiver_debug);

namespace {

GstDebugCategory *category_for(tlsframe::log::Component c) {
  switch (c) {
    case tlsframe::log::Component::kTls:
      return tlsframe_tls_debug;
    case tlsframe::log::Component::kServer:
      return tlsframe_server_debug;
    case tlsframe::log::Component::kReceiver:
      return tlsframe_receiver_debug;
  }
  return tlsframe_server_debug;
}

bool core_enabled(tlsframe::log::Level level, tlsframe::log::Component c) {
  return gst_debug_category_get_threshold(category_for(c)) >= static_cast<GstDebugLevel>(level);
}

void core_sink(tlsframe::log::Level level, tlsframe::log::Component c, const char *file, int line,
               const char *function, const std::string &message) {
  gst_debug_log(category_for(c), static_cast<GstDebugLevel>(level), file, function, line, nullptr,
                "%s", message.c_str());
}

}  // namespace

void gst_tls_frame_init_core_logging(void) {
  GST_DEBUG_CATEGORY_INIT(tlsframe_sink_debug, "tlsframesink", 0, "tlsframe TLS fan-out sink");
  GST_DEBUG_CATEGORY_INIT(tlsframe_src_debug, "tlsframesrc", 0, "tlsframe TLS client source");
  GST_DEBUG_CATEGORY_INIT(tlsframe_tls_debug, "tlsframe-tls", 0, "tlsframe TLS setup");
  GST_DEBUG_CATEGORY_INIT(tlsframe_server_debug, "tlsframe-server", 0, "tlsframe fan-out server");
  GST_DEBUG_CATEGORY_INIT(tlsframe_receiver_debug, "tlsframe-receiver", 0, "tlsframe receiver");
  tlsframe::log::set_sink(core_sink, core_enabled);
}

GType gst_tls_frame_tls_version_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_TLS_FRAME_TLS_VERSION_1_2, "TLS 1.2 (AEAD suites with ECDHE only)", "1.2"},
      {GST_TLS_FRAME_TLS_VERSION_1_3, "TLS 1.3", "1.3"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstTlsFrameTlsVersion", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

GType gst_tls_frame_client_status_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_TLS_FRAME_CLIENT_STATUS_CLOSED, "The client closed the connection", "closed"},
      {GST_TLS_FRAME_CLIENT_STATUS_ERROR, "Read, write or TLS error", "error"},
      {GST_TLS_FRAME_CLIENT_STATUS_TIMEOUT, "No progress within the timeout", "timeout"},
      {GST_TLS_FRAME_CLIENT_STATUS_PROTOCOL, "The client broke the protocol", "protocol"},
      {GST_TLS_FRAME_CLIENT_STATUS_SERVER_STOPPED, "The server stopped", "server-stopped"},
      {GST_TLS_FRAME_CLIENT_STATUS_EOS, "End of stream delivered", "eos"},
      {GST_TLS_FRAME_CLIENT_STATUS_FORBIDDEN,
       "Not authorized for the stream (authorized-clients or accept-client)", "forbidden"},
      {GST_TLS_FRAME_CLIENT_STATUS_REVOKED, "Its certificate was revoked (crl-file reloaded)",
       "revoked"},
      {0, nullptr, nullptr},
  };
  if (g_once_init_enter(&type)) {
    GType t = g_enum_register_static("GstTlsFrameClientStatus", values);
    g_once_init_leave(&type, t);
  }
  return type;
}

namespace tlsframe::gst {
namespace {
struct FlagPair {
  GstBufferFlags gst;
  uint32_t wire;
};
constexpr FlagPair kFlags[] = {
    {GST_BUFFER_FLAG_DELTA_UNIT, wire::kFlagDeltaUnit}, {GST_BUFFER_FLAG_HEADER, wire::kFlagHeader},
    {GST_BUFFER_FLAG_DISCONT, wire::kFlagDiscont},      {GST_BUFFER_FLAG_GAP, wire::kFlagGap},
    {GST_BUFFER_FLAG_DROPPABLE, wire::kFlagDroppable},  {GST_BUFFER_FLAG_MARKER, wire::kFlagMarker},
    {GST_BUFFER_FLAG_CORRUPTED, wire::kFlagCorrupted},
};
}  // namespace

uint32_t wire_flags_from_buffer(GstBuffer *buffer) {
  uint32_t out = 0;
  for (const auto &f : kFlags) {
    if (GST_BUFFER_FLAG_IS_SET(buffer, f.gst)) out |= f.wire;
  }
  return out;
}

void buffer_set_wire_flags(GstBuffer *buffer, uint32_t wire_flags) {
  for (const auto &f : kFlags) {
    if (wire_flags & f.wire) GST_BUFFER_FLAG_SET(buffer, f.gst);
  }
}

GstResourceError resource_error_for(const Error &e) {
  switch (e.kind) {
    case Error::Kind::kSettings:
      return GST_RESOURCE_ERROR_SETTINGS;
    case Error::Kind::kVerify:
    case Error::Kind::kPeerRefused:
      return GST_RESOURCE_ERROR_NOT_AUTHORIZED;
    case Error::Kind::kNotFound:
      return GST_RESOURCE_ERROR_NOT_FOUND;
    case Error::Kind::kBusy:
      return GST_RESOURCE_ERROR_BUSY;
    case Error::Kind::kNetwork:
    case Error::Kind::kTimeout:
      return GST_RESOURCE_ERROR_OPEN_READ;
    default:
      return GST_RESOURCE_ERROR_READ;
  }
}

}  // namespace tlsframe::gst

void post_core_error(GstElement *element, const tlsframe::Error &error, const char *file,
                     const char *function, int line) {
  // Bytes from the peer that are not our protocol are a stream error; the rest are resources.
  bool stream = error.kind == tlsframe::Error::Kind::kProtocol;
  gst_element_message_full(
      element, GST_MESSAGE_ERROR, stream ? GST_STREAM_ERROR : GST_RESOURCE_ERROR,
      stream ? static_cast<gint>(GST_STREAM_ERROR_DECODE)
             : static_cast<gint>(tlsframe::gst::resource_error_for(error)),
      g_strdup(error.message.c_str()),
      error.detail.empty() ? nullptr : g_strdup(error.detail.c_str()), file, function, line);
}
