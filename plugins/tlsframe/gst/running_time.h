// The pipeline's running time for a source element, shared by the plugin's sources.
#pragma once

#include <gst/gst.h>

namespace tlsframe::gst {

// Running time of the element's pipeline now, or GST_CLOCK_TIME_NONE without a clock.
inline GstClockTime running_time_now(GstElement *element) {
  GstClock *clock = gst_element_get_clock(element);
  if (!clock) return GST_CLOCK_TIME_NONE;
  GstClockTime now = gst_clock_get_time(clock);
  gst_object_unref(clock);
  GstClockTime base = gst_element_get_base_time(element);
  return now > base ? now - base : 0;
}

}  // namespace tlsframe::gst
