#include "runner.h"

#include <glib-unix.h>
#include <signal.h>

#include <cstring>
#include <iostream>
#include <map>

#include "cli.h"
#include "templates.h"

namespace tlsframe::tool {

namespace {

constexpr guint kStopTimeoutSeconds = 10;  // EOS must arrive within this after Ctrl-C

const std::map<std::string, std::string> &package_table() {
  static const std::map<std::string, std::string> table = {
      {"videotestsrc", "gstreamer1.0-plugins-base"},
      {"videoconvert", "gstreamer1.0-plugins-base"},
      {"videoscale", "gstreamer1.0-plugins-base"},
      {"videorate", "gstreamer1.0-plugins-base"},
      {"decodebin", "gstreamer1.0-plugins-base"},
      {"parsebin", "gstreamer1.0-plugins-base"},
      {"appsink", "gstreamer1.0-plugins-base"},
      {"tee", "libgstreamer1.0-0"},
      {"queue", "libgstreamer1.0-0"},
      {"fakesink", "libgstreamer1.0-0"},
      {"filesrc", "libgstreamer1.0-0"},
      {"filesink", "libgstreamer1.0-0"},
      {"jpegenc", "gstreamer1.0-plugins-good"},
      {"jpegdec", "gstreamer1.0-plugins-good"},
      {"v4l2src", "gstreamer1.0-plugins-good"},
      {"matroskamux", "gstreamer1.0-plugins-good"},
      {"mp4mux", "gstreamer1.0-plugins-good"},
      {"autovideosink", "gstreamer1.0-plugins-good"},
      {"h264parse", "gstreamer1.0-plugins-bad"},
      {"jpegparse", "gstreamer1.0-plugins-bad"},
      {"x264enc", "gstreamer1.0-plugins-ugly"},
      {"avdec_h264", "gstreamer1.0-libav"},
      {"ximagesink", "gstreamer1.0-x"},
      {"xvimagesink", "gstreamer1.0-x"},
  };
  return table;
}

std::string error_line(GstMessage *msg) {
  GError *err = nullptr;
  gchar *debug = nullptr;
  gst_message_parse_error(msg, &err, &debug);
  std::string text = err ? err->message : "unknown error";
  if (err && (g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN) ||
              g_error_matches(err, GST_STREAM_ERROR, GST_STREAM_ERROR_CODEC_NOT_FOUND))) {
    text +=
        " (a GStreamer plugin is missing: for H.264 install gstreamer1.0-libav, for JPEG "
        "gstreamer1.0-plugins-good)";
  }
  if (err && g_error_matches(err, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED) && debug) {
    // "Internal data stream error": the flow return in the debug text says why.
    const char *reason = strstr(debug, "reason ");
    if (reason) {
      std::string r = reason + 7;
      text += " (streaming stopped: " + r.substr(0, r.find(' ')) + ")";
    }
  }
  if (debug && g_getenv("TLSFRAME_VERBOSE")) text += std::string(" [") + debug + "]";
  g_clear_error(&err);
  g_free(debug);
  return text;
}

}  // namespace

std::string package_for_element(const std::string &factory) {
  if (factory == "tlsframesink" || factory == "tlsframesrc") {
    return "the tlsframe plugin (libgsttlsframe.so: install it, or set GST_PLUGIN_PATH to its "
           "directory)";
  }
  if (factory == "cvcamsrc") {
    return "the tlsframe plugin built with OpenCV (Debian package libopencv-dev, then "
           "meson setup -Dopencv=enabled)";
  }
  auto it = package_table().find(factory);
  return it == package_table().end() ? "" : "the Debian package " + it->second;
}

bool require_element(const std::string &factory, const std::string &why) {
  GstElementFactory *f = gst_element_factory_find(factory.c_str());
  if (f) {
    gst_object_unref(f);
    return true;
  }
  std::string pkg = package_for_element(factory);
  error("GStreamer element '" + factory + "' is missing" + (why.empty() ? "" : " (" + why + ")") +
        (pkg.empty() ? "" : ": install " + pkg));
  return false;
}

bool init_gstreamer() {
  GError *err = nullptr;
  if (!gst_init_check(nullptr, nullptr, &err)) {
    error(std::string("cannot initialise GStreamer: ") + (err ? err->message : "?"));
    g_clear_error(&err);
    return false;
  }
  GstElementFactory *f = gst_element_factory_find("tlsframesink");
  if (!f) {
    // Not installed: try the plugin next to this build of the tool.
    gst_registry_scan_path(gst_registry_get(), TLSFRAME_PLUGIN_BUILD_DIR);
    f = gst_element_factory_find("tlsframesink");
  }
  if (!f) {
    error(
        "the tlsframe GStreamer plugin was not found: install it, or set GST_PLUGIN_PATH to "
        "the directory holding libgsttlsframe.so");
    return false;
  }
  gst_object_unref(f);
  return true;
}

GstElement *launch(const std::string &description) {
  GError *err = nullptr;
  GstParseContext *ctx = gst_parse_context_new();
  GstElement *pipeline =
      gst_parse_launch_full(description.c_str(), ctx, GST_PARSE_FLAG_FATAL_ERRORS, &err);
  if (!pipeline || err) {
    gchar **missing = gst_parse_context_get_missing_elements(ctx);
    if (missing && missing[0]) {
      std::string text;
      for (gchar **m = missing; *m; ++m) {
        std::string pkg = package_for_element(*m);
        text += std::string(text.empty() ? "" : "; ") + "'" + *m + "'" +
                (pkg.empty() ? "" : " (install " + pkg + ")");
      }
      error(std::string("GStreamer element") + (missing[1] ? "s" : "") + " missing: " + text);
    } else {
      error(std::string("bad pipeline: ") + (err ? err->message : "parse failed") + ": " +
            description);
    }
    g_strfreev(missing);
    g_clear_error(&err);
    gst_parse_context_free(ctx);
    if (pipeline) gst_object_unref(pipeline);
    return nullptr;
  }
  gst_parse_context_free(ctx);
  if (!GST_IS_PIPELINE(pipeline)) {
    // A single element: wrap it so the bus and clock behave the same.
    GstElement *bin = gst_pipeline_new(nullptr);
    gst_bin_add(GST_BIN(bin), pipeline);
    pipeline = bin;
  }
  return pipeline;
}

GstElement *prepare_pipeline(const std::string &name, const RunOptions &run,
                             const std::map<std::string, std::string> &vars,
                             const PropertyValues &values, int *status) {
  *status = kExitError;
  auto description = pipeline_from_template(name, run.pipeline_file, vars);
  if (!description) return nullptr;
  return prepare_description(*description, run, values, status);
}

GstElement *prepare_description(const std::string &description, const RunOptions &run,
                                const PropertyValues &values, int *status) {
  *status = kExitError;
  if (run.print) {
    auto printable = printable_pipeline(description, values);
    if (!printable) return nullptr;
    std::cout << *printable << std::endl;
    *status = kExitOk;
    return nullptr;
  }
  return launch_with_values(description, values);
}

Runner::Runner(GstElement *pipeline) : pipeline_(pipeline) {
  GstBus *bus = gst_element_get_bus(pipeline_);
  bus_watch_ = gst_bus_add_watch(bus, &Runner::on_bus, this);
  gst_object_unref(bus);
}

Runner::~Runner() {
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  if (bus_watch_) g_source_remove(bus_watch_);
  gst_object_unref(pipeline_);
}

GstElement *Runner::element(const char *name) const {
  GstElement *e = gst_bin_get_by_name(GST_BIN(pipeline_), name);
  if (e) gst_object_unref(e);  // the bin keeps it alive
  return e;
}

GstElement *Runner::require(const char *name, const char *factory) const {
  GstElement *e = element(name);
  if (!e) error(std::string("the pipeline has no ") + factory + " named '" + name + "'");
  return e;
}

void Runner::stop() {
  if (stopping_) return;
  stopping_ = true;
  gst_element_send_event(pipeline_, gst_event_new_eos());
  g_timeout_add_seconds(kStopTimeoutSeconds, &Runner::on_stop_timeout, this);
}

void Runner::quit(int status) {
  status_ = status;
  done_ = true;
}

gboolean Runner::on_stop_timeout(gpointer data) {
  auto *self = static_cast<Runner *>(data);
  if (!self->done_) {
    error("end of stream did not arrive within " + std::to_string(kStopTimeoutSeconds) +
          " s; stopping anyway");
    self->quit(kExitError);
  }
  return G_SOURCE_REMOVE;
}

gboolean Runner::on_signal(gpointer data) {
  auto *self = static_cast<Runner *>(data);
  if (self->stopping_) {
    info("interrupted again: stopping now");
    self->quit(kExitError);
  } else {
    info("interrupted: sending end of stream (Ctrl-C again to quit at once)");
    self->stop();
  }
  return G_SOURCE_CONTINUE;
}

gboolean Runner::on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *self = static_cast<Runner *>(data);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
      if (self->done_) break;
      std::string text = error_line(msg);
      std::string hint = self->hint_for_error ? self->hint_for_error(msg) : "";
      error(text + (hint.empty() ? "" : " (" + hint + ")"));
      self->quit(kExitError);
      break;
    }
    case GST_MESSAGE_WARNING:
      if (self->on_warning && !self->done_) self->on_warning(msg);
      break;
    case GST_MESSAGE_EOS:
      if (self->on_eos) self->on_eos();
      self->quit(kExitOk);
      break;
    case GST_MESSAGE_STATE_CHANGED:
      if (GST_MESSAGE_SRC(msg) == GST_OBJECT(self->pipeline_) && !self->playing_) {
        GstState next;
        gst_message_parse_state_changed(msg, nullptr, &next, nullptr);
        if (next == GST_STATE_PLAYING) {
          self->playing_ = true;
          if (self->on_playing) self->on_playing();
        }
      }
      break;
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure(msg);
      if (s && self->on_element_message) self->on_element_message(s, GST_MESSAGE_SRC(msg));
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

int Runner::run() {
  guint sigint = g_unix_signal_add(SIGINT, &Runner::on_signal, this);
  guint sigterm = g_unix_signal_add(SIGTERM, &Runner::on_signal, this);
  if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The reason is an ERROR message on the bus; give it a moment to be dispatched.
    GstBus *bus = gst_element_get_bus(pipeline_);
    GstMessage *msg = gst_bus_timed_pop_filtered(bus, GST_SECOND, GST_MESSAGE_ERROR);
    gst_object_unref(bus);
    if (msg) {
      on_bus(nullptr, msg, this);
      gst_message_unref(msg);
    } else {
      error("the pipeline failed to start");
    }
    done_ = true;
    status_ = kExitError;
  }
  while (!done_) {
    if (step) {
      g_main_context_iteration(nullptr, FALSE);
      if (!done_ && !step()) stop();
    } else {
      g_main_context_iteration(nullptr, TRUE);
    }
  }
  g_source_remove(sigint);
  g_source_remove(sigterm);
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  return status_;
}

}  // namespace tlsframe::tool
