// A viewer for the slow-link test (tests/net/slowlink_netns.py): plays one
// tlsframe stream through a real decoder and prints one JSON object a line
// on stdout, as things happen, each with `t` (CLOCK_REALTIME, seconds):
//
//   {"ev":"connected","t":..,"rendition":"high"}          tlsframesrc-connected
//   {"ev":"frame","t":..,"lat_ms":12.3,"r":"high"}        each buffer tlsframesrc pushes:
//                                                          receive time minus the server's send
//                                                          time (reference timestamp meta)
//   {"ev":"rendition","t":..,"to":"low","from":"high","reason":".."}   tlsframesrc-rendition
//   {"ev":"stall","t":..,"gap_ms":1234}                   no decoded frame for over --stall-ms
//   {"ev":"sec","t":..,"decoded":30}                       decoded frames in the last second
//   {"ev":"warning"|"error","t":..,"from":"..","text":".."}  bus warnings and errors
//   {"ev":"end","t":..,"decoded":..,"frames":..,"warnings":..}
//
//   slowlink_viewer --host H --port P --ca-file F --stream NAME [--rendition R] [--seconds S]
//
// Runs for --seconds (default 60) or until an error or EOS, then exits (0
// unless an error was posted). Time on this machine's clock: the server
// stamps each buffer with its own CLOCK_REALTIME, so the latency is exact
// when both run on the same machine (other network namespaces included).
#include <gst/gst.h>
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace {

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// JSON string contents: quotes, backslashes and control characters escaped.
std::string quoted(const char *s) {
  std::string out = "\"";
  for (const char *p = s ? s : ""; *p; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

struct Viewer {
  std::mutex lock;  // guards everything below (streaming threads and the main loop)
  std::string rendition;
  uint64_t frames = 0;   // buffers tlsframesrc pushed
  uint64_t decoded = 0;  // frames out of the decoder
  uint64_t second_decoded = 0;
  double last_decoded = 0;  // time of the last decoded frame (0 = none yet)
  double stall_ms = 1000;   // a gap longer than this is reported as a stall
  uint64_t warnings = 0;
  bool failed = false;
  GstCaps *unix_time = nullptr;
  GMainLoop *loop = nullptr;
};

void emit(const std::string &line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

GstPadProbeReturn on_received(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *v = static_cast<Viewer *>(data);
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  const double t = now_s();
  double lat_ms = -1;
  if (GstReferenceTimestampMeta *sent =
          gst_buffer_get_reference_timestamp_meta(buf, v->unix_time)) {
    lat_ms = (t * 1e9 - static_cast<double>(sent->timestamp)) / 1e6;
  }
  std::lock_guard<std::mutex> g(v->lock);
  v->frames++;
  char line[256];
  std::snprintf(line, sizeof line, "{\"ev\":\"frame\",\"t\":%.6f,\"lat_ms\":%.1f,\"r\":%s}", t,
                lat_ms, quoted(v->rendition.c_str()).c_str());
  emit(line);
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn on_decoded(GstPad *, GstPadProbeInfo *, gpointer data) {
  auto *v = static_cast<Viewer *>(data);
  const double t = now_s();
  std::lock_guard<std::mutex> g(v->lock);
  if (v->last_decoded > 0 && (t - v->last_decoded) * 1000 > v->stall_ms) {
    char line[128];
    std::snprintf(line, sizeof line, "{\"ev\":\"stall\",\"t\":%.6f,\"gap_ms\":%.0f}", t,
                  (t - v->last_decoded) * 1000);
    emit(line);
  }
  v->last_decoded = t;
  v->decoded++;
  v->second_decoded++;
  return GST_PAD_PROBE_OK;
}

gboolean on_second(gpointer data) {
  auto *v = static_cast<Viewer *>(data);
  std::lock_guard<std::mutex> g(v->lock);
  char line[128];
  std::snprintf(line, sizeof line, "{\"ev\":\"sec\",\"t\":%.6f,\"decoded\":%" PRIu64 "}", now_s(),
                v->second_decoded);
  emit(line);
  v->second_decoded = 0;
  return G_SOURCE_CONTINUE;
}

gboolean on_deadline(gpointer data) {
  g_main_loop_quit(static_cast<Viewer *>(data)->loop);
  return G_SOURCE_REMOVE;
}

gboolean on_bus(GstBus *, GstMessage *msg, gpointer data) {
  auto *v = static_cast<Viewer *>(data);
  const char *from = GST_MESSAGE_SRC_NAME(msg);
  switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ELEMENT: {
      const GstStructure *s = gst_message_get_structure(msg);
      if (!s) break;
      std::lock_guard<std::mutex> g(v->lock);
      if (gst_structure_has_name(s, "tlsframesrc-connected")) {
        const char *r = gst_structure_get_string(s, "rendition");
        v->rendition = r ? r : "";
        emit("{\"ev\":\"connected\",\"t\":" + std::to_string(now_s()) +
             ",\"rendition\":" + quoted(v->rendition.c_str()) + "}");
      } else if (gst_structure_has_name(s, "tlsframesrc-rendition")) {
        const char *to = gst_structure_get_string(s, "rendition");
        v->rendition = to ? to : "";
        emit("{\"ev\":\"rendition\",\"t\":" + std::to_string(now_s()) + ",\"to\":" + quoted(to) +
             ",\"from\":" + quoted(gst_structure_get_string(s, "previous")) +
             ",\"reason\":" + quoted(gst_structure_get_string(s, "reason")) + "}");
      }
      break;
    }
    case GST_MESSAGE_WARNING:
    case GST_MESSAGE_ERROR: {
      const bool error = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR;
      GError *err = nullptr;
      gchar *debug = nullptr;
      if (error) {
        gst_message_parse_error(msg, &err, &debug);
      } else {
        gst_message_parse_warning(msg, &err, &debug);
      }
      std::string text = err ? err->message : "";
      if (debug) text += std::string(" (") + debug + ")";
      {
        std::lock_guard<std::mutex> g(v->lock);
        emit(std::string("{\"ev\":\"") + (error ? "error" : "warning") +
             "\",\"t\":" + std::to_string(now_s()) + ",\"from\":" + quoted(from) +
             ",\"text\":" + quoted(text.c_str()) + "}");
        if (error)
          v->failed = true;
        else
          v->warnings++;
      }
      g_clear_error(&err);
      g_free(debug);
      if (error) g_main_loop_quit(v->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      g_main_loop_quit(v->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: slowlink_viewer --host H --port P --ca-file F --stream NAME "
               "[--rendition R] [--seconds S] [--stall-ms MS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  std::string host, ca_file, stream, rendition = "auto";
  int port = 0;
  double seconds = 60;
  Viewer v;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    const char *val = argv[++i];
    if (a == "--host")
      host = val;
    else if (a == "--port")
      port = std::atoi(val);
    else if (a == "--ca-file")
      ca_file = val;
    else if (a == "--stream")
      stream = val;
    else if (a == "--rendition")
      rendition = val;
    else if (a == "--seconds")
      seconds = std::atof(val);
    else if (a == "--stall-ms")
      v.stall_ms = std::atof(val);
    else
      usage();
  }
  if (host.empty() || ca_file.empty() || port <= 0 || seconds <= 0) usage();

  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(
      "tlsframesrc name=src ! h264parse ! avdec_h264 name=dec ! fakesink sync=false", &err);
  if (!pipeline) {
    std::fprintf(stderr, "slowlink_viewer: %s\n", err ? err->message : "cannot make the pipeline");
    return 1;
  }
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  GstElement *dec = gst_bin_get_by_name(GST_BIN(pipeline), "dec");
  g_object_set(src, "host", host.c_str(), "port", port, "ca-file", ca_file.c_str(), "stream-name",
               stream.c_str(), "rendition", rendition.c_str(), nullptr);
  v.unix_time = gst_caps_new_empty_simple("timestamp/x-unix");
  v.loop = g_main_loop_new(nullptr, FALSE);
  GstPad *src_pad = gst_element_get_static_pad(src, "src");
  GstPad *dec_pad = gst_element_get_static_pad(dec, "src");
  gst_pad_add_probe(src_pad, GST_PAD_PROBE_TYPE_BUFFER, on_received, &v, nullptr);
  gst_pad_add_probe(dec_pad, GST_PAD_PROBE_TYPE_BUFFER, on_decoded, &v, nullptr);
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_bus_add_watch(bus, on_bus, &v);
  g_timeout_add(1000, on_second, &v);
  g_timeout_add(static_cast<guint>(seconds * 1000), on_deadline, &v);
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    std::fprintf(stderr, "slowlink_viewer: cannot start the pipeline\n");
    return 1;
  }
  g_main_loop_run(v.loop);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  {
    std::lock_guard<std::mutex> g(v.lock);
    char line[192];
    std::snprintf(line, sizeof line,
                  "{\"ev\":\"end\",\"t\":%.6f,\"decoded\":%" PRIu64 ",\"frames\":%" PRIu64
                  ",\"warnings\":%" PRIu64 "}",
                  now_s(), v.decoded, v.frames, v.warnings);
    emit(line);
  }
  gst_object_unref(src_pad);
  gst_object_unref(dec_pad);
  gst_object_unref(bus);
  gst_object_unref(src);
  gst_object_unref(dec);
  gst_object_unref(pipeline);
  gst_caps_unref(v.unix_time);
  g_main_loop_unref(v.loop);
  return v.failed ? 1 : 0;
}
