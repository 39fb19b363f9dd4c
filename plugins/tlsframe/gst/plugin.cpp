// Plugin registration: tlsframesink and tlsframesrc (and cvcamsrc when built with OpenCV).
#include <gst/gst.h>

#include "gst/common.h"
#include "gst/gsttlsframesink.h"
#include "gst/gsttlsframesrc.h"
#ifdef TLSFRAME_HAVE_OPENCV
#include "gst/gstcvcamsrc.h"
#endif

static gboolean plugin_init(GstPlugin *plugin) {
  gst_tls_frame_init_core_logging();
  gboolean ok =
      gst_element_register(plugin, "tlsframesink", GST_RANK_NONE, GST_TYPE_TLS_FRAME_SINK);
  ok &= gst_element_register(plugin, "tlsframesrc", GST_RANK_NONE, GST_TYPE_TLS_FRAME_SRC);
#ifdef TLSFRAME_HAVE_OPENCV
  ok &= gst_element_register(plugin, "cvcamsrc", GST_RANK_NONE, GST_TYPE_CV_CAM_SRC);
#endif
  return ok;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, tlsframe,
                  "Encoded media fan-out from one server to many clients over TLS", plugin_init,
                  VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
