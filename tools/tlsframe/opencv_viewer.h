// The OpenCV display of `tlsframe view`: BGR frames from an appsink shown in a
// HighGUI window with fps and latency overlaid; `q` or Esc closes it. Built
// only with the meson feature `opencv`. Runs on the main thread (HighGUI's rule).
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

namespace tlsframe::tool {

class OpenCvViewer {
 public:
  // appsink: the pipeline's BGR appsink; src: its tlsframesrc, whose buffers'
  // arrival times give the latency shown (receive to display). Both borrowed.
  OpenCvViewer(GstElement *appsink, GstElement *src, std::string title);
  ~OpenCvViewer();
  OpenCvViewer(const OpenCvViewer &) = delete;
  OpenCvViewer &operator=(const OpenCvViewer &) = delete;

  // Shows the next frame if one is ready and handles keys; blocks at most ~10 ms.
  // False when the user closed the window (q, Esc or the close button).
  bool step();
  uint64_t frames_shown() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlsframe::tool
