// tlsframesrc: live TLS client that receives caps and buffers from tlsframesink.
#pragma once

#include <gst/base/gstpushsrc.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_TLS_FRAME_SRC (gst_tls_frame_src_get_type())
G_DECLARE_FINAL_TYPE(GstTlsFrameSrc, gst_tls_frame_src, GST, TLS_FRAME_SRC, GstPushSrc)

G_END_DECLS
