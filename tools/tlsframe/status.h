// The one-line status of serve, relay and view: refreshed in place on a
// terminal, a plain line every `interval` seconds otherwise, nothing with --quiet.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <string>

namespace tlsframe::tool {

class StatusLine {
 public:
  explicit StatusLine(unsigned interval_s);
  // Called once a second with the current text.
  void show(const std::string &text);
  // Ends an in-place line with a newline (before other output or exit).
  void finish();

 private:
  bool tty_;
  unsigned interval_s_;
  unsigned ticks_ = 0;
  bool dirty_ = false;
};

// Per-second rates from monotonically growing totals.
class Rate {
 public:
  double update(uint64_t total);  // per second since the last call (0 on the first)

 private:
  uint64_t last_total_ = 0;
  gint64 last_us_ = 0;
};

// "2 clients, 30.0 fps, 4.21 Mbit/s, 0 dropped" from a tlsframesink's stats.
class SinkStatus {
 public:
  std::string text(GstElement *sink);

 private:
  Rate frames_, bytes_;
};

}  // namespace tlsframe::tool
