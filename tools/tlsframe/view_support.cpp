#include "view_support.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli.h"
#include "core/receiver.h"

namespace tlsframe::tool {

namespace {

constexpr GstClockTime kProbeTimeout = 15 * GST_SECOND;  // connect + handshake + caps

bool have_display() {
  const char *wayland = std::getenv("WAYLAND_DISPLAY");
  if (wayland && *wayland) return true;
  const char *x = std::getenv("DISPLAY");
  if (!x || !*x) return false;
  if (x[0] == ':') {
    // Local X server: its socket must exist (a stale DISPLAY would make a window toolkit abort).
    std::string number = std::string(x + 1).substr(0, std::string(x + 1).find('.'));
    struct stat st;
    return stat(("/tmp/.X11-unix/X" + number).c_str(), &st) == 0;
  }
  return true;
}

bool built_with_opencv() {
#ifdef TLSFRAME_HAVE_OPENCV
  return true;
#else
  return false;
#endif
}

}  // namespace

std::optional<Display> choose_display(const std::string &spec, bool other_output) {
  if (spec == "none") return Display::kNone;
  if (spec != "auto" && spec != "opencv" && spec != "gst") {
    error("--display must be auto, opencv, gst or none, not '" + spec + "'");
    return std::nullopt;
  }
  if (spec == "opencv" && !built_with_opencv()) {
    error(
        "this tlsframe was built without OpenCV; use --display gst or none (or rebuild with "
        "libopencv-dev installed)");
    return std::nullopt;
  }
  if (!have_display()) {
    if (spec == "auto" && other_output) return Display::kNone;
    error(
        "no display available (DISPLAY and WAYLAND_DISPLAY unset or unreachable): use "
        "--display none to only receive, or --record FILE.mkv to save the stream");
    return std::nullopt;
  }
  if (spec == "gst") return Display::kGst;
  if (spec == "opencv") return Display::kOpenCv;
  return built_with_opencv() ? Display::kOpenCv : Display::kGst;
}

std::string display_sink(Display d) {
  switch (d) {
    case Display::kOpenCv:
      return "videoconvert ! video/x-raw,format=BGR ! appsink name=cvsink max-buffers=2 "
             "drop=true sync=false";
    case Display::kGst:
      return "videoconvert ! autovideosink sync=false";
    case Display::kNone:
      break;
  }
  return "fakesink name=display sync=false";
}

bool muxer_for(const std::string &file, std::string *muxer) {
  auto ends = [&](const char *ext) {
    size_t n = strlen(ext);
    return file.size() > n && file.compare(file.size() - n, n, ext) == 0;
  };
  if (ends(".mkv")) {
    *muxer = "matroskamux";
  } else if (ends(".mp4")) {
    *muxer = "mp4mux";
  } else {
    error("--record needs a .mkv or .mp4 file name, not '" + file + "'");
    return false;
  }
  return true;
}

std::string caps_summary(const std::string &caps_text) {
  GstCaps *caps = gst_caps_from_string(caps_text.c_str());
  if (!caps || gst_caps_is_empty(caps)) {
    if (caps) gst_caps_unref(caps);
    return caps_text;
  }
  const GstStructure *s = gst_caps_get_structure(caps, 0);
  std::string out = gst_structure_get_name(s);
  gint w = 0, h = 0, n = 0, d = 1;
  if (gst_structure_get_int(s, "width", &w) && gst_structure_get_int(s, "height", &h)) {
    out += " " + std::to_string(w) + "x" + std::to_string(h);
  }
  if (gst_structure_get_fraction(s, "framerate", &n, &d) && n > 0 && d > 0) {
    char rate[32];
    snprintf(rate, sizeof rate, " at %g fps", static_cast<double>(n) / d);
    out += rate;
  }
  const gchar *profile = gst_structure_get_string(s, "profile");
  if (profile) out += std::string(", profile ") + profile;
  gst_caps_unref(caps);
  return out;
}

std::string codec_from_caps(const std::string &caps) {
  if (caps.rfind("image/jpeg", 0) == 0) return "jpeg";
  if (caps.rfind("video/x-h264", 0) == 0) return "h264";
  return "decodebin";
}

std::string decoder_for(const std::string &codec) {
  if (codec == "jpeg") return "jpegdec";
  if (codec == "h264") return "h264parse ! avdec_h264";
  return "decodebin";
}

std::string parser_for(const std::string &codec) {
  return codec == "h264" ? "h264parse ! " : "";
}

std::optional<std::string> probe_stream_caps(const PropertyValues &src_values) {
  GstElement *p =
      launch_with_values("tlsframesrc name=src ! fakesink name=probe sync=false", src_values);
  if (!p) return std::nullopt;
  GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "probe");
  GstPad *pad = gst_element_get_static_pad(sink, "sink");
  std::string *caps_text = new std::string;
  gulong id = gst_pad_add_probe(
      pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
      [](GstPad *, GstPadProbeInfo *info, gpointer d) -> GstPadProbeReturn {
        GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
        if (GST_EVENT_TYPE(ev) == GST_EVENT_CAPS) {
          GstCaps *caps;
          gst_event_parse_caps(ev, &caps);
          gchar *s = gst_caps_to_string(caps);
          *static_cast<std::string *>(d) = s;
          g_free(s);
        }
        return GST_PAD_PROBE_OK;
      },
      caps_text, nullptr);
  GstBus *bus = gst_element_get_bus(p);
  std::optional<std::string> result;
  gst_element_set_state(p, GST_STATE_PLAYING);
  gint64 deadline = g_get_monotonic_time() + kProbeTimeout / 1000;
  // The caps arrive with the first buffer, which prerolls the sink (ASYNC_DONE).
  while (g_get_monotonic_time() < deadline) {
    GstMessage *m = gst_bus_timed_pop_filtered(
        bus, 50 * GST_MSECOND,
        static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_ASYNC_DONE));
    if (!m) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError *err = nullptr;
      gst_message_parse_error(m, &err, nullptr);
      std::string hint = client_error_hint(m);
      error(std::string(err ? err->message : "connection failed") +
            (hint.empty() ? "" : " (" + hint + ")"));
      g_clear_error(&err);
      gst_message_unref(m);
      break;
    }
    bool done =
        GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS || GST_MESSAGE_TYPE(m) == GST_MESSAGE_ASYNC_DONE;
    gst_message_unref(m);
    if (done) {
      gst_element_set_state(p, GST_STATE_NULL);  // no more probe callbacks after this
      if (!caps_text->empty()) {
        result = *caps_text;
      } else {
        error("the server sent no stream description before ending");
      }
      break;
    }
  }
  gst_element_set_state(p, GST_STATE_NULL);
  if (!result && g_get_monotonic_time() >= deadline) {
    error("no stream from the server within " + std::to_string(kProbeTimeout / GST_SECOND) + " s");
  }
  gst_pad_remove_probe(pad, id);
  gst_object_unref(pad);
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(p);
  delete caps_text;
  return result;
}

std::optional<StreamTarget> read_target(const std::string &text, int default_port) {
  // A name or a scheme: the core's parser (the one tlsframesrc's uri uses);
  // plain HOST[:PORT] keeps the tool's own reading (bare IPv6 included).
  if (text.find('/') != std::string::npos) {
    auto a = tlsframe::parse_stream_target(text);
    if (!a) {
      error(a.error().message);
      return std::nullopt;
    }
    return StreamTarget{a->host, a->port, a->stream};
  }
  auto hp = parse_host_port(text, default_port);
  if (!hp) {
    error("cannot read '" + text + "' as HOST[:PORT][/NAME] or [IPV6]:PORT[/NAME]");
    return std::nullopt;
  }
  return StreamTarget{hp->host, hp->port, ""};
}

std::string target_text(const StreamTarget &t) {
  return (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" +
         std::to_string(t.port);
}

std::optional<std::vector<StreamEntry>> list_streams(const PropertyValues &src_values) {
  // The element reads the values (same checks and defaults as for viewing);
  // the core does the one request.
  GstElement *p = launch_with_values("tlsframesrc name=src ! fakesink", src_values);
  if (!p) return std::nullopt;
  GstElement *src = gst_bin_get_by_name(GST_BIN(p), "src");
  gchar *host = nullptr, *server_name = nullptr, *ca = nullptr, *cert = nullptr, *key = nullptr;
  int port = 0, min_tls = 13;
  guint connect_timeout = 0, timeout = 0;
  g_object_get(src, "host", &host, "port", &port, "server-name", &server_name, "ca-file", &ca,
               "cert-file", &cert, "key-file", &key, "connect-timeout", &connect_timeout, "timeout",
               &timeout, "min-tls-version", &min_tls, nullptr);
  tlsframe::ReceiverConfig c;
  c.host = host ? host : "";
  c.port = static_cast<uint16_t>(port);
  c.server_name = server_name ? server_name : "";
  c.tls.ca_file = ca ? ca : "";
  c.tls.cert_file = cert ? cert : "";
  c.tls.key_file = key ? key : "";
  c.tls.min_version =
      min_tls == 12 ? tlsframe::tls::Version::kTls12 : tlsframe::tls::Version::kTls13;
  c.connect_timeout = std::chrono::seconds(connect_timeout ? connect_timeout : 10);
  c.read_timeout = std::chrono::seconds(timeout ? timeout : 10);
  g_free(host);
  g_free(server_name);
  g_free(ca);
  g_free(cert);
  g_free(key);
  gst_object_unref(src);
  gst_object_unref(p);
  auto list = tlsframe::Receiver::list_streams(c);
  if (!list) {
    error(list.error().message);
    return std::nullopt;
  }
  std::vector<StreamEntry> out;
  for (const tlsframe::StreamInfo &s : *list) out.push_back({s.name, s.caps, s.viewers});
  return out;
}

int print_stream_list(const PropertyValues &src_values) {
  auto list = list_streams(src_values);
  if (!list) return kExitError;
  if (list->empty()) {
    info("the server has no streams");
    return kExitOk;
  }
  // Fixed columns for people; the names are plain ASCII (valid_stream_name), the
  // caps summary was checked as text by the decoder.
  std::printf("%-24s %-40s %s\n", "NAME", "CAPS", "VIEWERS");
  for (const StreamEntry &s : *list) {
    std::printf("%-24s %-40s %u\n", s.name.empty() ? "(default)" : s.name.c_str(),
                s.caps.empty() ? "(no caps yet)" : s.caps.c_str(), s.viewers);
  }
  std::fflush(stdout);
  return kExitOk;
}

std::string client_error_hint(GstMessage *msg) {
  GError *err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  std::string hint;
  if (err && err->domain == GST_RESOURCE_ERROR) {
    if (err->code == GST_RESOURCE_ERROR_NOT_AUTHORIZED && err->message &&
        strstr(err->message, "pinned fingerprint")) {
      hint = "compare --fingerprint with the one tlsframe serve prints at start";
    } else if (err->code == GST_RESOURCE_ERROR_NOT_AUTHORIZED) {
      hint =
          "check --certs/--ca: it must hold the CA that signed the server's certificate, "
          "whose names must include the host you dial (else --server-name); a server with "
          "--mtls also needs --client NAME";
    } else if (err->code == GST_RESOURCE_ERROR_OPEN_READ) {
      hint = "is the server running, and are host and port right?";
    } else if (err->code == GST_RESOURCE_ERROR_NOT_FOUND) {
      hint = "tlsframe view --list HOST[:PORT] shows the streams a server has";
    } else if (err->code == GST_RESOURCE_ERROR_SETTINGS) {
      hint = "check the certificate options";
    }
  }
  g_clear_error(&err);
  return hint;
}

void drop_after_first(GstElement *element) {
  if (!element) return;
  GstPad *pad = gst_element_get_static_pad(element, "src");
  gst_pad_add_probe(
      pad, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *, gpointer) { return GST_PAD_PROBE_DROP; }, nullptr, nullptr);
  gst_object_unref(pad);
}

std::string escape_percent(const std::string &path) {
  std::string out;
  for (char c : path) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

ViewerCounter::ViewerCounter(GstElement *src) {
  GstPad *pad = gst_element_get_static_pad(src, "src");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, &ViewerCounter::on_buffer, this, nullptr);
  gst_object_unref(pad);
}

GstPadProbeReturn ViewerCounter::on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *self = static_cast<ViewerCounter *>(data);
  self->frames_++;
  self->bytes_ += gst_buffer_get_size(GST_PAD_PROBE_INFO_BUFFER(info));
  return GST_PAD_PROBE_OK;
}

std::string ViewerCounter::text() {
  char line[128];
  snprintf(line, sizeof line, "%llu frames, %.1f fps, %.2f Mbit/s",
           static_cast<unsigned long long>(frames_.load()), fps_.update(frames_),
           rate_.update(bytes_) * 8 / 1e6);
  return line;
}

}  // namespace tlsframe::tool
