// tlsframesink: TLS server that fans every rendered buffer out to all clients.
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_TLS_FRAME_SINK (gst_tls_frame_sink_get_type())
G_DECLARE_FINAL_TYPE(GstTlsFrameSink, gst_tls_frame_sink, GST, TLS_FRAME_SINK, GstBaseSink)

G_END_DECLS
