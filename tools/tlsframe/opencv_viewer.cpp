#include "opencv_viewer.h"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

#include <cstdio>
#include <deque>
#include <mutex>
#include <opencv2/highgui.hpp>
#include <opencv2/imgproc.hpp>
#include <utility>

#include "cli.h"

namespace tlsframe::tool {

namespace {
constexpr GstClockTime kPullTimeout = 10 * GST_MSECOND;
constexpr double kFpsSmoothing = 0.9;  // weight of the previous fps estimate
constexpr size_t kArrivalsKept = 64;   // frames between receive and display we can match
}  // namespace

struct OpenCvViewer::Impl {
  GstElement *appsink = nullptr;
  GstElement *src = nullptr;
  std::string title;
  std::mutex arrivals_lock;  // protects arrivals (written on the streaming thread)
  std::deque<std::pair<GstClockTime, gint64>> arrivals;  // (PTS, wall-clock us when sent)
  GstPad *src_pad = nullptr;
  gulong probe = 0;
  bool window_open = false;
  uint64_t frames = 0;
  gint64 last_frame_us = 0;
  double fps = 0;
  double latency_ms = 0;
};

OpenCvViewer::OpenCvViewer(GstElement *appsink, GstElement *src, std::string title)
    : impl_(new Impl) {
  impl_->appsink = appsink;
  impl_->src = src;
  impl_->title = std::move(title);
  impl_->src_pad = gst_element_get_static_pad(src, "src");
  impl_->probe = gst_pad_add_probe(
      impl_->src_pad, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        auto *d = static_cast<Impl *>(data);
        GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
        // When the server sent it (tlsframesrc's reference timestamp), else now.
        static GstStaticCaps unix_time_caps = GST_STATIC_CAPS("timestamp/x-unix");
        GstCaps *unix_time = gst_static_caps_get(&unix_time_caps);
        GstReferenceTimestampMeta *sent = gst_buffer_get_reference_timestamp_meta(buf, unix_time);
        gst_caps_unref(unix_time);
        gint64 sent_us = sent ? static_cast<gint64>(sent->timestamp / 1000) : g_get_real_time();
        std::lock_guard<std::mutex> lock(d->arrivals_lock);
        d->arrivals.emplace_back(GST_BUFFER_PTS(buf), sent_us);
        if (d->arrivals.size() > kArrivalsKept) d->arrivals.pop_front();
        return GST_PAD_PROBE_OK;
      },
      impl_.get(), nullptr);
}

OpenCvViewer::~OpenCvViewer() {
  gst_pad_remove_probe(impl_->src_pad, impl_->probe);
  gst_object_unref(impl_->src_pad);
  if (impl_->window_open) {
    cv::destroyWindow(impl_->title);
    cv::waitKey(1);
  }
}

uint64_t OpenCvViewer::frames_shown() const {
  return impl_->frames;
}

bool OpenCvViewer::step() {
  Impl &d = *impl_;
  GstSample *sample = gst_app_sink_try_pull_sample(GST_APP_SINK(d.appsink), kPullTimeout);
  if (sample) {
    GstVideoInfo vinfo;
    GstBuffer *buf = gst_sample_get_buffer(sample);
    GstVideoFrame frame;
    if (gst_video_info_from_caps(&vinfo, gst_sample_get_caps(sample)) &&
        gst_video_frame_map(&frame, &vinfo, buf, GST_MAP_READ)) {
      // Copy, so the overlay never writes into GStreamer's buffer.
      cv::Mat image =
          cv::Mat(vinfo.height, vinfo.width, CV_8UC3, GST_VIDEO_FRAME_PLANE_DATA(&frame, 0),
                  GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0))
              .clone();
      gst_video_frame_unmap(&frame);

      gint64 now_us = g_get_monotonic_time();
      if (d.last_frame_us) {
        double inst = 1e6 / static_cast<double>(std::max<gint64>(now_us - d.last_frame_us, 1));
        d.fps = d.fps == 0 ? inst : kFpsSmoothing * d.fps + (1 - kFpsSmoothing) * inst;
      }
      d.last_frame_us = now_us;
      // Latency: from the server sending the frame to now (network, decode, convert,
      // queue); wall clocks, so across hosts it is only as good as their clock sync.
      const gint64 now_real_us = g_get_real_time();
      {
        std::lock_guard<std::mutex> lock(d.arrivals_lock);
        for (const auto &a : d.arrivals) {
          if (a.first == GST_BUFFER_PTS(buf)) d.latency_ms = (now_real_us - a.second) / 1000.0;
        }
      }
      char text[96];
      snprintf(text, sizeof text, "%.1f fps  latency %.0f ms  %dx%d", d.fps, d.latency_ms,
               vinfo.width, vinfo.height);
      int base = 0;
      cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, 0.6, 1, &base);
      cv::rectangle(image, cv::Point(6, 6), cv::Point(14 + size.width, 16 + size.height + base),
                    cv::Scalar(0, 0, 0), cv::FILLED);
      cv::putText(image, text, cv::Point(10, 12 + size.height), cv::FONT_HERSHEY_SIMPLEX, 0.6,
                  cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
      if (!d.window_open) {
        cv::namedWindow(d.title, cv::WINDOW_AUTOSIZE | cv::WINDOW_GUI_NORMAL);
        cv::moveWindow(d.title, 0, 0);
        d.window_open = true;
      }
      cv::imshow(d.title, image);
      d.frames++;
      if (d.frames == 1) info("showing the stream in an OpenCV window (q or Esc closes it)");
    }
    gst_sample_unref(sample);
  }
  if (!d.window_open) return true;
  int key = cv::waitKey(1);
  if (key == 'q' || key == 'Q' || key == 27) {
    info("window closed with " + std::string(key == 27 ? "Esc" : "q"));
    return false;
  }
  if (cv::getWindowProperty(d.title, cv::WND_PROP_VISIBLE) < 1) {
    info("window closed");
    return false;
  }
  return true;
}

}  // namespace tlsframe::tool
