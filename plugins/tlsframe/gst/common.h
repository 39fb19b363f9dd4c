// Shared by the element glue: debug categories, enums, conversions between
// GstBuffer flags and wire flags, core Error -> element error.
#pragma once

#include <gst/gst.h>

#include <string>

#include "core/result.h"
#include "core/tls_context.h"
#include "core/wire_format.h"

G_BEGIN_DECLS

GST_DEBUG_CATEGORY_EXTERN(tlsframe_sink_debug);
GST_DEBUG_CATEGORY_EXTERN(tlsframe_src_debug);

// Minimum TLS protocol version property values.
typedef enum {
  GST_TLS_FRAME_TLS_VERSION_1_2 = 12,
  GST_TLS_FRAME_TLS_VERSION_1_3 = 13,
} GstTlsFrameTlsVersion;
GType gst_tls_frame_tls_version_get_type(void);
#define GST_TYPE_TLS_FRAME_TLS_VERSION (gst_tls_frame_tls_version_get_type())

// Why a client was removed (client-removed signal); same values as tlsframe::RemoveReason.
typedef enum {
  GST_TLS_FRAME_CLIENT_STATUS_CLOSED = 0,
  GST_TLS_FRAME_CLIENT_STATUS_ERROR = 1,
  GST_TLS_FRAME_CLIENT_STATUS_TIMEOUT = 2,
  GST_TLS_FRAME_CLIENT_STATUS_PROTOCOL = 3,
  GST_TLS_FRAME_CLIENT_STATUS_SERVER_STOPPED = 4,
  GST_TLS_FRAME_CLIENT_STATUS_EOS = 5,
  GST_TLS_FRAME_CLIENT_STATUS_FORBIDDEN = 6,
  GST_TLS_FRAME_CLIENT_STATUS_REVOKED = 7,
} GstTlsFrameClientStatus;
GType gst_tls_frame_client_status_get_type(void);
#define GST_TYPE_TLS_FRAME_CLIENT_STATUS (gst_tls_frame_client_status_get_type())

void gst_tls_frame_init_core_logging(void);

G_END_DECLS

namespace tlsframe::gst {

inline tls::Version to_core_version(GstTlsFrameTlsVersion v) {
  return v == GST_TLS_FRAME_TLS_VERSION_1_2 ? tls::Version::kTls12 : tls::Version::kTls13;
}

uint32_t wire_flags_from_buffer(GstBuffer *buffer);
void buffer_set_wire_flags(GstBuffer *buffer, uint32_t wire_flags);

// String properties: NULL and "" both mean unset.
inline std::string string_from_value(const GValue *value) {
  const gchar *v = g_value_get_string(value);
  return v ? v : "";
}
inline void value_set_string_or_null(GValue *value, const std::string &v) {
  g_value_set_string(value, v.empty() ? nullptr : v.c_str());
}

// GstResourceError code matching a core error kind.
GstResourceError resource_error_for(const Error &e);

}  // namespace tlsframe::gst

// Post one element error (RESOURCE domain, code from the error kind) for a
// core Error: the message for people, the detail as debug text.
void post_core_error(GstElement *element, const tlsframe::Error &error, const char *file,
                     const char *function, int line);
#define TLSFRAME_ELEMENT_ERROR(el, err) \
  post_core_error(GST_ELEMENT(el), (err), __FILE__, GST_FUNCTION, __LINE__)
