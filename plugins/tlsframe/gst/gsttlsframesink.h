// tlsframesink: TLS server that fans every rendered buffer out to all clients.
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_TLS_FRAME_SINK (gst_tls_frame_sink_get_type())
G_DECLARE_FINAL_TYPE(GstTlsFrameSink, gst_tls_frame_sink, GST, TLS_FRAME_SINK, GstBaseSink)

// sync-method: where a new client starts. multihandlesink's nicks and values
// (GstMultiHandleSinkSyncMethod) for the ones tlsframesink supports; same
// values as tlsframe::SyncMethod.
typedef enum {
  GST_TLS_FRAME_SINK_SYNC_METHOD_NEXT_KEYFRAME = 1,
  GST_TLS_FRAME_SINK_SYNC_METHOD_LATEST_KEYFRAME = 2,
} GstTlsFrameSinkSyncMethod;
GType gst_tls_frame_sink_sync_method_get_type(void);
#define GST_TYPE_TLS_FRAME_SINK_SYNC_METHOD (gst_tls_frame_sink_sync_method_get_type())

G_END_DECLS
