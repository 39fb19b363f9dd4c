#include "source.h"

#include <glob.h>

#include <vector>

#include "cli.h"
#include "runner.h"

namespace tlsframe::tool {

namespace {

constexpr GstClockTime kProbeTimeout = 4 * GST_SECOND;  // per device

// True when `description` (ending in a sink) delivers one buffer and reaches EOS in time.
bool probe(const std::string &description, const PropertyValues &values) {
  GstElement *p = gst_parse_launch(description.c_str(), nullptr);
  if (!p) return false;
  if (!apply_values(p, values)) {
    gst_object_unref(p);
    return false;
  }
  GstBus *bus = gst_element_get_bus(p);
  bool ok = false;
  if (gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE) {
    GstMessage *m = gst_bus_timed_pop_filtered(
        bus, kProbeTimeout, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    ok = m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
    if (m) gst_message_unref(m);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(p);
  return ok;
}

bool have_element(const char *name) {
  GstElementFactory *f = gst_element_factory_find(name);
  if (f) gst_object_unref(f);
  return f != nullptr;
}

std::vector<std::string> video_devices() {
  std::vector<std::string> out;
  glob_t g{};
  if (glob("/dev/video*", 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  return out;
}

Source test_source(const std::string &element, const std::string &pattern, const std::string &why) {
  return {"videotestsrc name=" + element + " is-live=true",
          {{element, "pattern", pattern}},
          "test pattern " + pattern + " (videotestsrc)",
          why};
}

Source device_source(const std::string &element, const std::string &dev, const std::string &why) {
  return {
      "v4l2src name=" + element, {{element, "device", dev}}, "camera " + dev + " (v4l2src)", why};
}

}  // namespace

std::optional<Source> choose_source(const std::string &spec, const std::string &element) {
  std::string kind = spec, arg;
  auto colon = spec.find(':');
  if (colon != std::string::npos) {
    kind = spec.substr(0, colon);
    arg = spec.substr(colon + 1);
  }
  if (kind == "test") {
    // A videotestsrc pattern: its nick (ball, smpte, solid-color) or number.
    std::string pattern = arg.empty() ? "ball" : arg;
    for (char c : pattern) {
      if (!g_ascii_isalnum(c) && c != '-') {
        error("--source test:PATTERN takes a videotestsrc pattern (ball, smpte, ...), not '" +
              pattern + "'");
        return std::nullopt;
      }
    }
    return test_source(element, pattern, "");
  }
  if (kind == "v4l2") {
    if (!require_element("v4l2src", "--source v4l2")) return std::nullopt;
    return device_source(element, arg.empty() ? "/dev/video0" : arg, "");
  }
  if (kind == "opencv") {
    if (!require_element("cvcamsrc", "--source opencv")) return std::nullopt;
    if (!arg.empty() && arg.find_first_not_of("0123456789") != std::string::npos) {
      // Not an index: a video file, which cvcamsrc opens only if it is a regular file, and
      // only with OpenCV's FFmpeg backend (never as a pipeline or URL).
      return Source{"cvcamsrc name=" + element,
                    {{element, "location", arg}},
                    "video " + arg + " through OpenCV (cvcamsrc)",
                    ""};
    }
    long index = 0;
    if (!arg.empty() && !parse_int("source opencv:INDEX", arg, 0, 1000, &index)) {
      return std::nullopt;
    }
    return Source{"cvcamsrc name=" + element + " device-index=" + std::to_string(index),
                  {},
                  "OpenCV camera " + std::to_string(index) + " (cvcamsrc)",
                  ""};
  }
  if (kind == "file") {
    if (arg.empty() || !file_readable(arg)) {
      error("--source file:PATH: cannot read '" + arg + "'");
      return std::nullopt;
    }
    // gst_parse_launch links decodebin's first video pad; other streams stay unlinked, which a
    // demuxer tolerates while one of its pads is linked.
    return Source{"filesrc name=" + element + " ! decodebin",
                  {{element, "location", arg}},
                  "video file " + arg + " (decodebin)",
                  ""};
  }
  if (kind != "auto" || !arg.empty()) {
    error("--source must be auto, v4l2[:DEVICE], opencv[:INDEX], test or file:PATH, not '" + spec +
          "'");
    return std::nullopt;
  }

  // auto: the first camera that delivers a frame, else the test pattern.
  std::string why;
  auto devices = video_devices();
  if (devices.empty()) {
    why = "no /dev/video* device";
  } else if (!have_element("v4l2src")) {
    why = "v4l2src is missing (gstreamer1.0-plugins-good)";
  } else {
    for (const auto &dev : devices) {
      if (probe("v4l2src name=source num-buffers=1 ! fakesink", {{"source", "device", dev}})) {
        return device_source(element, dev, "it delivered a test frame");
      }
    }
    why = "no /dev/video* device delivered a frame";
  }
  if (!have_element("cvcamsrc")) {
    why += "; OpenCV camera source not built";
  } else if (probe("cvcamsrc device-index=0 num-buffers=1 ! fakesink", {})) {
    return Source{"cvcamsrc name=" + element + " device-index=0",
                  {},
                  "OpenCV camera 0 (cvcamsrc)",
                  why + "; OpenCV camera 0 delivered a test frame"};
  } else {
    why += "; OpenCV camera 0 did not open";
  }
  return test_source(element, "ball", why);
}

}  // namespace tlsframe::tool
