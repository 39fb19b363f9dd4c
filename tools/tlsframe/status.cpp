#include "status.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli.h"

namespace tlsframe::tool {

StatusLine::StatusLine(unsigned interval_s)
    : tty_(isatty(STDOUT_FILENO) != 0), interval_s_(interval_s ? interval_s : 1) {}

void StatusLine::show(const std::string &text) {
  if (quiet()) return;
  if (tty_) {
    std::cout << "\r" << text << "\033[K" << std::flush;
    dirty_ = true;
    return;
  }
  if (++ticks_ % interval_s_ == 0) std::cout << "status: " << text << std::endl;
}

void StatusLine::finish() {
  if (dirty_) std::cout << std::endl;
  dirty_ = false;
}

double Rate::update(uint64_t total) {
  gint64 now = g_get_monotonic_time();
  double rate = 0;
  if (last_us_ && now > last_us_ && total >= last_total_) {
    rate = static_cast<double>(total - last_total_) * 1e6 / static_cast<double>(now - last_us_);
  }
  last_us_ = now;
  last_total_ = total;
  return rate;
}

std::string SinkStatus::text(GstElement *sink) {
  GstStructure *stats = nullptr;
  g_object_get(sink, "stats", &stats, nullptr);
  guint64 clients = 0, frames = 0, bytes = 0, dropped = 0;
  if (stats) {
    gst_structure_get_uint64(stats, "clients", &clients);
    gst_structure_get_uint64(stats, "buffers-published", &frames);
    gst_structure_get_uint64(stats, "bytes-sent", &bytes);
    gst_structure_get_uint64(stats, "frames-dropped", &dropped);
    gst_structure_free(stats);
  }
  char line[160];
  snprintf(line, sizeof line, "%llu client%s, %.1f fps, %.2f Mbit/s, %llu dropped",
           static_cast<unsigned long long>(clients), clients == 1 ? "" : "s",
           frames_.update(frames), bytes_.update(bytes) * 8 / 1e6,
           static_cast<unsigned long long>(dropped));
  return line;
}

}  // namespace tlsframe::tool
