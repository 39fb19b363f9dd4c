// cvcamsrc's frame conversion: whatever layout cv::VideoCapture hands out, to the one format
// the element negotiates (BGR, 8 bits, CV_8UC3). Header-only so a unit test converts Mats of
// each layout without a pipeline or a camera.
#pragma once

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

namespace tlsframe::gst {

// Converts `in` to CV_8UC3 BGR of the same size: 1 channel = gray, 2 channels = YUY2 (a
// camera's YUYV with RGB conversion off; even width), 3 = BGR as is, 4 = BGRA. 16-bit
// samples are scaled to 8 bits, other depths saturated. False with *why for any other
// layout (out left empty): a caller never copies bytes the Mat does not hold.
inline bool to_bgr8(const cv::Mat &in, cv::Mat *out, std::string *why) {
  *out = cv::Mat();
  if (in.empty() || in.dims != 2) {
    *why = "empty or not a 2-D frame";
    return false;
  }
  try {
    cv::Mat eight = in;
    if (in.depth() == CV_16U) {
      in.convertTo(eight, CV_MAKETYPE(CV_8U, in.channels()), 1.0 / 256);
    } else if (in.depth() != CV_8U) {
      in.convertTo(eight, CV_MAKETYPE(CV_8U, in.channels()));
    }
    cv::Mat bgr;
    switch (eight.channels()) {
      case 1:
        cv::cvtColor(eight, bgr, cv::COLOR_GRAY2BGR);
        break;
      case 2:
        if (eight.cols % 2 != 0) {
          *why = "2-channel (YUY2) frame with an odd width " + std::to_string(eight.cols);
          return false;
        }
        cv::cvtColor(eight, bgr, cv::COLOR_YUV2BGR_YUY2);
        break;
      case 3:
        bgr = eight;
        break;
      case 4:
        cv::cvtColor(eight, bgr, cv::COLOR_BGRA2BGR);
        break;
      default:
        *why = std::to_string(eight.channels()) + "-channel frames are not supported";
        return false;
    }
    if (bgr.type() != CV_8UC3 || bgr.cols != in.cols || bgr.rows != in.rows) {
      *why = "conversion gave type " + std::to_string(bgr.type()) + " " + std::to_string(bgr.cols) +
             "x" + std::to_string(bgr.rows);
      return false;
    }
    *out = bgr;
    return true;
  } catch (const cv::Exception &e) {
    *why = e.what();
    return false;
  }
}

}  // namespace tlsframe::gst
