// --source for serve: auto|v4l2[:DEVICE]|opencv[:INDEX]|test|file:PATH.
#pragma once

#include <optional>
#include <string>

#include "values.h"

namespace tlsframe::tool {

// The source element is named `element` ("source" unless a stream of several names it);
// user text (device, file, pattern) is in values.
struct Source {
  std::string launch;     // gst-launch fragment producing raw video: structure only
  PropertyValues values;  // set on "source" after parsing
  std::string what;       // for people: "test pattern", "camera /dev/video0 (v4l2src)"
  std::string why;        // for auto: why this one was chosen
};

// Resolves the --source text; auto tries a one-frame capture from each
// /dev/video* with v4l2src, then OpenCV camera 0 with cvcamsrc, then falls
// back to a test pattern. nullopt after an error line (bad syntax, missing element).
std::optional<Source> choose_source(const std::string &spec, const std::string &element = "source");

}  // namespace tlsframe::tool
