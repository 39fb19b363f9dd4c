// cvcamsrc: a live GstPushSrc around cv::VideoCapture.
//
// start() opens the camera `device-index` (or the video file `location`: a
// regular file only, through OpenCV's FFmpeg backend, so the string is never
// handed to a backend that would run it as a pipeline or fetch a URL) and
// reads its native size and rate. Caps offer BGR at
// the native size first, then any size: set_caps() asks the capture for the
// negotiated size and rate, and frames that still come out at another size are
// scaled, so the caps always hold. Frames are paced on the pipeline clock at
// the negotiated rate (a file would otherwise be read as fast as possible) and
// stamped with the running time at capture, like any live source.
#include "gst/gstcvcamsrc.h"

#include <gst/video/video.h>
#include <sys/stat.h>

#include <cerrno>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <string>

#include "gst/cv_frame.h"
#include "gst/element_docs.h"
#include "gst/running_time.h"

GST_DEBUG_CATEGORY_STATIC(cv_cam_src_debug);
#define GST_CAT_DEFAULT cv_cam_src_debug

namespace {

constexpr int DEFAULT_DEVICE_INDEX = 0;
constexpr const char *DEFAULT_LOCATION = nullptr;
constexpr gboolean DEFAULT_LOOP = FALSE;
constexpr int kFallbackFps = 30;  // when the capture reports no rate
// Files are opened with FFmpeg only (never CAP_ANY, which includes OpenCV's GStreamer backend).
constexpr int kFileBackend = cv::CAP_FFMPEG;

enum { PROP_0, PROP_DEVICE_INDEX, PROP_LOCATION, PROP_LOOP, PROP_LAST };
GParamSpec *properties[PROP_LAST];

// Copied once in start().
struct Settings {
  int device_index = DEFAULT_DEVICE_INDEX;
  std::string location;  // empty: use device_index
  bool loop = DEFAULT_LOOP;
};

struct Private {
  std::mutex settings_lock;  // protects settings
  Settings settings;
  Settings active;  // copy taken in start(); streaming thread only after that
  // Streaming thread (and start/stop, which never overlap it):
  cv::VideoCapture capture;
  int native_width = 0, native_height = 0;
  int native_fps_n = kFallbackFps, native_fps_d = 1;
  GstVideoInfo info;  // negotiated format
  bool negotiated = false;
  guint64 frame_count = 0;
  GstClockTime first_time = GST_CLOCK_TIME_NONE;  // running time of the first frame
  std::mutex clock_lock;                          // protects clock_id and flushing
  GstClockID clock_id = nullptr;
  bool flushing = false;
};

}  // namespace

struct _GstCvCamSrc {
  GstPushSrc parent;
  Private *priv;
};

G_DEFINE_TYPE(GstCvCamSrc, gst_cv_cam_src, GST_TYPE_PUSH_SRC)

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("BGR")));

static std::string describe(const Settings &s) {
  return s.location.empty() ? "camera " + std::to_string(s.device_index)
                            : "video '" + s.location + "'";
}

static gboolean gst_cv_cam_src_start(GstBaseSrc *bsrc) {
  auto *self = GST_CV_CAM_SRC(bsrc);
  Private *p = self->priv;
  {
    std::lock_guard<std::mutex> lock(p->settings_lock);
    p->active = p->settings;
  }
  if (!p->active.location.empty()) {
    // Only a regular file, and only through FFmpeg: with CAP_ANY, OpenCV's GStreamer backend
    // runs a location holding " ! " as a pipeline (any elements, e.g. a filesink).
    struct stat st;
    if (stat(p->active.location.c_str(), &st) != 0) {
      int err = errno;
      GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
                        ("Could not open %s: %s.", describe(p->active).c_str(), g_strerror(err)),
                        ("stat failed"));
      return FALSE;
    }
    if (!S_ISREG(st.st_mode)) {
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                        ("Could not open %s: not a regular file (cvcamsrc reads video files).",
                         describe(p->active).c_str()),
                        ("st_mode 0%o", static_cast<unsigned>(st.st_mode)));
      return FALSE;
    }
  }
  // OpenCV prints its own warnings for a missing device; we post one error instead.
  auto previous = cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  bool opened = false;
  try {
    opened = p->active.location.empty() ? p->capture.open(p->active.device_index)
                                        : p->capture.open(p->active.location, kFileBackend);
  } catch (const cv::Exception &e) {
    GST_DEBUG_OBJECT(self, "open threw: %s", e.what());
  }
  cv::utils::logging::setLogLevel(previous);
  if (!opened || !p->capture.isOpened()) {
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND,
                      ("Could not open %s with OpenCV.", describe(p->active).c_str()),
                      ("cv::VideoCapture::open failed (no such device, or a file FFmpeg cannot "
                       "read)"));
    return FALSE;
  }
  p->native_width = static_cast<int>(p->capture.get(cv::CAP_PROP_FRAME_WIDTH));
  p->native_height = static_cast<int>(p->capture.get(cv::CAP_PROP_FRAME_HEIGHT));
  double fps = p->capture.get(cv::CAP_PROP_FPS);
  if (fps > 0.5 && fps < 1000.0) {
    gst_util_double_to_fraction(fps, &p->native_fps_n, &p->native_fps_d);
  } else {
    p->native_fps_n = kFallbackFps;
    p->native_fps_d = 1;
  }
  if (p->native_width <= 0 || p->native_height <= 0) {
    // Some backends only know the size after the first frame.
    cv::Mat probe;
    if (p->capture.read(probe) && !probe.empty()) {
      p->native_width = probe.cols;
      p->native_height = probe.rows;
    }
  }
  if (p->native_width <= 0 || p->native_height <= 0) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                      ("%s opened but delivers no frames.", describe(p->active).c_str()),
                      ("no frame size from the capture backend"));
    p->capture.release();
    return FALSE;
  }
  GST_INFO_OBJECT(self, "opened %s (backend %s): %dx%d at %d/%d", describe(p->active).c_str(),
                  p->capture.getBackendName().c_str(), p->native_width, p->native_height,
                  p->native_fps_n, p->native_fps_d);
  p->negotiated = false;
  p->frame_count = 0;
  p->first_time = GST_CLOCK_TIME_NONE;
  return TRUE;
}

static gboolean gst_cv_cam_src_stop(GstBaseSrc *bsrc) {
  auto *self = GST_CV_CAM_SRC(bsrc);
  self->priv->capture.release();
  self->priv->negotiated = false;
  return TRUE;
}

static GstCaps *gst_cv_cam_src_get_caps(GstBaseSrc *bsrc, GstCaps *filter) {
  auto *self = GST_CV_CAM_SRC(bsrc);
  Private *p = self->priv;
  GstCaps *caps;
  if (!p->capture.isOpened()) {
    caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(bsrc));
  } else {
    // Native mode first (preferred by fixation), then any size and rate (scaled/paced).
    caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "BGR", "width", G_TYPE_INT,
                               p->native_width, "height", G_TYPE_INT, p->native_height, "framerate",
                               GST_TYPE_FRACTION, p->native_fps_n, p->native_fps_d, nullptr);
    gst_caps_append(caps, gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "BGR",
                                              "width", GST_TYPE_INT_RANGE, 1, G_MAXINT, "height",
                                              GST_TYPE_INT_RANGE, 1, G_MAXINT, "framerate",
                                              GST_TYPE_FRACTION_RANGE, 1, 1, G_MAXINT, 1, nullptr));
  }
  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = tmp;
  }
  return caps;
}

static GstCaps *gst_cv_cam_src_fixate(GstBaseSrc *bsrc, GstCaps *caps) {
  auto *self = GST_CV_CAM_SRC(bsrc);
  Private *p = self->priv;
  caps = gst_caps_make_writable(caps);
  caps = gst_caps_truncate(caps);
  GstStructure *s = gst_caps_get_structure(caps, 0);
  gst_structure_fixate_field_nearest_int(s, "width", p->native_width > 0 ? p->native_width : 640);
  gst_structure_fixate_field_nearest_int(s, "height",
                                         p->native_height > 0 ? p->native_height : 480);
  gst_structure_fixate_field_nearest_fraction(s, "framerate", p->native_fps_n, p->native_fps_d);
  return GST_BASE_SRC_CLASS(gst_cv_cam_src_parent_class)->fixate(bsrc, caps);
}

static gboolean gst_cv_cam_src_set_caps(GstBaseSrc *bsrc, GstCaps *caps) {
  auto *self = GST_CV_CAM_SRC(bsrc);
  Private *p = self->priv;
  GstVideoInfo info;
  if (!gst_video_info_from_caps(&info, caps) || GST_VIDEO_INFO_FPS_N(&info) <= 0) {
    GST_ERROR_OBJECT(self, "unusable caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  if (p->active.location.empty() &&
      (info.width != p->native_width || info.height != p->native_height)) {
    // A camera may have a mode of this size; if not, frames are scaled in create().
    p->capture.set(cv::CAP_PROP_FRAME_WIDTH, info.width);
    p->capture.set(cv::CAP_PROP_FRAME_HEIGHT, info.height);
    p->capture.set(cv::CAP_PROP_FPS, static_cast<double>(info.fps_n) / info.fps_d);
  }
  p->info = info;
  p->negotiated = true;
  gst_base_src_set_blocksize(bsrc, static_cast<guint>(info.size));
  GST_INFO_OBJECT(self, "negotiated %" GST_PTR_FORMAT, caps);
  return TRUE;
}

// Waits on the pipeline clock until running time `when`. FALSE when flushing.
static bool wait_until(GstCvCamSrc *self, GstClockTime when) {
  Private *p = self->priv;
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  if (!clock) return true;
  GstClockID id = gst_clock_new_single_shot_id(clock, when + GST_ELEMENT(self)->base_time);
  gst_object_unref(clock);
  {
    std::lock_guard<std::mutex> lock(p->clock_lock);
    if (p->flushing) {
      gst_clock_id_unref(id);
      return false;
    }
    p->clock_id = id;
  }
  GstClockReturn ret = gst_clock_id_wait(id, nullptr);
  {
    std::lock_guard<std::mutex> lock(p->clock_lock);
    p->clock_id = nullptr;
  }
  gst_clock_id_unref(id);
  return ret != GST_CLOCK_UNSCHEDULED;
}

static GstFlowReturn gst_cv_cam_src_create(GstPushSrc *psrc, GstBuffer **out) {
  auto *self = GST_CV_CAM_SRC(psrc);
  Private *p = self->priv;
  if (!p->negotiated) return GST_FLOW_NOT_NEGOTIATED;

  // Pace at the negotiated rate: frame n is due n frame durations after the first.
  GstClockTime duration = gst_util_uint64_scale_int(GST_SECOND, p->info.fps_d, p->info.fps_n);
  if (GST_CLOCK_TIME_IS_VALID(p->first_time)) {
    GstClockTime due = p->first_time + p->frame_count * duration;
    if (!wait_until(self, due)) return GST_FLOW_FLUSHING;
  }

  cv::Mat frame;
  bool ok = p->capture.read(frame);
  if ((!ok || frame.empty()) && p->active.loop && !p->active.location.empty()) {
    p->capture.set(cv::CAP_PROP_POS_FRAMES, 0);
    ok = p->capture.read(frame);
  }
  if (!ok || frame.empty()) {
    if (!p->active.location.empty()) {
      GST_INFO_OBJECT(self, "end of %s", describe(p->active).c_str());
      return GST_FLOW_EOS;
    }
    GST_ELEMENT_ERROR(self, RESOURCE, READ,
                      ("Could not read a frame from %s.", describe(p->active).c_str()),
                      ("cv::VideoCapture::read failed"));
    return GST_FLOW_ERROR;
  }
  // Every layout becomes the negotiated BGR, or the stream stops: the copy below reads
  // exactly width * 3 bytes per row, which only a CV_8UC3 Mat of that width holds.
  cv::Mat bgr;
  std::string why;
  if (!tlsframe::gst::to_bgr8(frame, &bgr, &why)) {
    GST_ELEMENT_ERROR(
        self, STREAM, FORMAT,
        ("%s delivers frames that cannot be converted to BGR.", describe(p->active).c_str()),
        ("%dx%d, type %d: %s", frame.cols, frame.rows, frame.type(), why.c_str()));
    return GST_FLOW_ERROR;
  }
  frame = bgr;
  if (frame.cols != p->info.width || frame.rows != p->info.height) {
    cv::Mat scaled;
    cv::resize(frame, scaled, cv::Size(p->info.width, p->info.height), 0, 0, cv::INTER_AREA);
    frame = scaled;
  }
  if (frame.type() != CV_8UC3 || frame.cols != p->info.width || frame.rows != p->info.height) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("Internal error converting a frame."),
                      ("got %dx%d type %d, negotiated %dx%d BGR", frame.cols, frame.rows,
                       frame.type(), p->info.width, p->info.height));
    return GST_FLOW_ERROR;
  }

  GstBuffer *buf = gst_buffer_new_allocate(nullptr, p->info.size, nullptr);
  GstVideoFrame vframe;
  if (!gst_video_frame_map(&vframe, &p->info, buf, GST_MAP_WRITE)) {
    gst_buffer_unref(buf);
    return GST_FLOW_ERROR;
  }
  auto *dst = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&vframe, 0));
  int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&vframe, 0);
  size_t row = static_cast<size_t>(p->info.width) * 3;
  for (int y = 0; y < p->info.height; ++y) memcpy(dst + y * stride, frame.ptr(y), row);
  gst_video_frame_unmap(&vframe);

  GstClockTime now = tlsframe::gst::running_time_now(GST_ELEMENT(self));
  if (!GST_CLOCK_TIME_IS_VALID(p->first_time)) p->first_time = now;
  GST_BUFFER_PTS(buf) = now;
  GST_BUFFER_DTS(buf) = GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION(buf) = duration;
  GST_BUFFER_OFFSET(buf) = p->frame_count;
  GST_BUFFER_OFFSET_END(buf) = p->frame_count + 1;
  if (p->frame_count == 0) GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
  p->frame_count++;
  GST_LOG_OBJECT(self, "frame %" G_GUINT64_FORMAT " at %" GST_TIME_FORMAT, p->frame_count,
                 GST_TIME_ARGS(now));
  *out = buf;
  return GST_FLOW_OK;
}

static gboolean gst_cv_cam_src_unlock(GstBaseSrc *bsrc) {
  Private *p = GST_CV_CAM_SRC(bsrc)->priv;
  std::lock_guard<std::mutex> lock(p->clock_lock);
  p->flushing = true;
  if (p->clock_id) gst_clock_id_unschedule(p->clock_id);
  return TRUE;
}

static gboolean gst_cv_cam_src_unlock_stop(GstBaseSrc *bsrc) {
  Private *p = GST_CV_CAM_SRC(bsrc)->priv;
  std::lock_guard<std::mutex> lock(p->clock_lock);
  p->flushing = false;
  return TRUE;
}

static void gst_cv_cam_src_set_property(GObject *object, guint prop_id, const GValue *value,
                                        GParamSpec *pspec) {
  auto *self = GST_CV_CAM_SRC(object);
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  Settings &s = self->priv->settings;
  switch (prop_id) {
    case PROP_DEVICE_INDEX:
      s.device_index = g_value_get_int(value);
      break;
    case PROP_LOCATION: {
      const gchar *v = g_value_get_string(value);
      s.location = v ? v : "";
      break;
    }
    case PROP_LOOP:
      s.loop = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_cv_cam_src_get_property(GObject *object, guint prop_id, GValue *value,
                                        GParamSpec *pspec) {
  auto *self = GST_CV_CAM_SRC(object);
  std::lock_guard<std::mutex> lock(self->priv->settings_lock);
  const Settings &s = self->priv->settings;
  switch (prop_id) {
    case PROP_DEVICE_INDEX:
      g_value_set_int(value, s.device_index);
      break;
    case PROP_LOCATION:
      g_value_set_string(value, s.location.empty() ? nullptr : s.location.c_str());
      break;
    case PROP_LOOP:
      g_value_set_boolean(value, s.loop);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void gst_cv_cam_src_finalize(GObject *object) {
  delete GST_CV_CAM_SRC(object)->priv;
  G_OBJECT_CLASS(gst_cv_cam_src_parent_class)->finalize(object);
}

static void gst_cv_cam_src_class_init(GstCvCamSrcClass *klass) {
  auto *gobject_class = G_OBJECT_CLASS(klass);
  auto *element_class = GST_ELEMENT_CLASS(klass);
  auto *basesrc_class = GST_BASE_SRC_CLASS(klass);
  auto *pushsrc_class = GST_PUSH_SRC_CLASS(klass);

  GST_DEBUG_CATEGORY_INIT(cv_cam_src_debug, "cvcamsrc", 0, "OpenCV camera source");

  gobject_class->set_property = gst_cv_cam_src_set_property;
  gobject_class->get_property = gst_cv_cam_src_get_property;
  gobject_class->finalize = gst_cv_cam_src_finalize;

  properties[PROP_DEVICE_INDEX] = g_param_spec_int(
      "device-index", "Device index",
      "OpenCV camera index (0 = first camera, e.g. /dev/video0); ignored when location is set", 0,
      G_MAXINT, DEFAULT_DEVICE_INDEX,
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                               GST_PARAM_MUTABLE_READY));
  properties[PROP_LOCATION] = g_param_spec_string(
      "location", "Location",
      "Video file (a regular file, opened with OpenCV's FFmpeg backend) instead of a camera "
      "(NULL = use device-index)",
      DEFAULT_LOCATION,
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                               GST_PARAM_MUTABLE_READY));
  properties[PROP_LOOP] = g_param_spec_boolean(
      "loop", "Loop", "With location: start again at the end of the file instead of EOS",
      DEFAULT_LOOP,
      static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                               GST_PARAM_MUTABLE_READY));
  g_object_class_install_properties(gobject_class, PROP_LAST, properties);

  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "OpenCV camera source", "Source/Video",
      CVCAMSRC_LONG_DESCRIPTION, "tlsframe");

  basesrc_class->start = gst_cv_cam_src_start;
  basesrc_class->stop = gst_cv_cam_src_stop;
  basesrc_class->get_caps = gst_cv_cam_src_get_caps;
  basesrc_class->fixate = gst_cv_cam_src_fixate;
  basesrc_class->set_caps = gst_cv_cam_src_set_caps;
  basesrc_class->unlock = gst_cv_cam_src_unlock;
  basesrc_class->unlock_stop = gst_cv_cam_src_unlock_stop;
  pushsrc_class->create = gst_cv_cam_src_create;
}

static void gst_cv_cam_src_init(GstCvCamSrc *self) {
  self->priv = new Private();
  gst_video_info_init(&self->priv->info);
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
  gst_base_src_set_do_timestamp(GST_BASE_SRC(self), FALSE);
}
