// `tlsframe view HOST[:PORT]`: tlsframesrc -> decoder -> window, plus an
// optional recording (remuxed, not re-encoded) and snapshot.
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>

#include "cli.h"
#include "commands.h"
#include "runner.h"
#include "status.h"
#include "tls_files.h"
#include "view_support.h"
#ifdef TLSFRAME_HAVE_OPENCV
#include "opencv_viewer.h"
#endif

namespace tlsframe::tool {

namespace {

constexpr int kDefaultPort = 9999;

constexpr const char *kUsage = R"(usage: tlsframe view HOST[:PORT] [OPTIONS]

Connects to `tlsframe serve` (or a relay) and shows, records or snapshots the stream.
HOST may be a name, an IPv4 address or [IPv6]; PORT defaults to 9999.

  --display D       auto (default): an OpenCV window if built with OpenCV, else a GStreamer
                    window, when a display exists; opencv, gst, or none (receive only)
  --record FILE     also save the stream, remuxed without re-encoding: FILE.mkv or FILE.mp4
  --snapshot FILE   save the first decoded frame as JPEG
  --frames N        stop after N frames (0 = until the server ends or Ctrl-C)
  --codec C         auto (default: from the stream's caps), jpeg, h264 or decodebin
  --certs DIR       trust DIR/ca.pem (default: the per-user directory
                    ${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs; the system CAs when
                    DIR/ca.pem is absent)
  --ca FILE         trust this CA file instead
  --client NAME     present DIR/client-NAME.pem (servers with --mtls)
  --server-name N   name the server certificate must have (default: HOST)
  --port N          server port (instead of HOST:PORT)
  --pipeline FILE   use this pipeline template instead of view.pipeline
  --print-pipeline  print the gst-launch-1.0 pipeline and exit
  --quiet           print errors only
  --status-interval S  seconds between status lines when not on a terminal (default 10)
In the OpenCV window, q or Esc quits. Ctrl-C stops and finishes the recording.
)";

}  // namespace

int cmd_view(int argc, char **argv) {
  std::string display = "auto", record, snapshot, frames = "0", codec = "auto", server_name,
              port_text;
  TlsOptions tls;
  Options opts;
  opts.value("display", &display, "D");
  opts.value("record", &record, "FILE");
  opts.value("snapshot", &snapshot, "FILE");
  opts.value("frames", &frames, "N");
  opts.value("codec", &codec, "C");
  opts.value("server-name", &server_name, "NAME");
  opts.value("port", &port_text, "N");
  tls.declare(opts, false, true);
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, kUsage, &positional);
  if (done >= 0) return done;
  if (positional.size() != 1) {
    error(positional.empty() ? "which server? usage: tlsframe view HOST[:PORT] (see --help)"
                             : "one server only, not '" + positional[1] + "'");
    return kExitUsage;
  }
  auto target = parse_host_port(positional[0], kDefaultPort);
  if (!target) {
    error("cannot read '" + positional[0] + "' as HOST[:PORT] or [IPV6]:PORT");
    return kExitUsage;
  }
  long n_frames = 0;
  if (!parse_int("frames", frames, 0, 1L << 40, &n_frames)) return kExitUsage;
  if (!port_text.empty()) {
    long p;
    if (!parse_int("port", port_text, 1, 65535, &p)) return kExitUsage;
    target->port = static_cast<int>(p);
  }
  if (codec != "auto" && codec != "jpeg" && codec != "h264" && codec != "decodebin") {
    error("--codec must be auto, jpeg, h264 or decodebin, not '" + codec + "'");
    return kExitUsage;
  }
  std::string muxer;
  if (!record.empty() && !muxer_for(record, &muxer)) return kExitUsage;

  auto chosen = choose_display(display, !record.empty() || !snapshot.empty());
  if (!chosen) return kExitUsage;
  if (!init_gstreamer(&argc, &argv)) return kExitError;

  bool ok = false;
  std::string src_tls = src_tls_props(tls, &ok);
  if (!ok) return kExitError;
  std::string src_props = "host=" + quote(target->host) + " port=" + std::to_string(target->port) +
                          (server_name.empty() ? "" : " server-name=" + quote(server_name)) +
                          (src_tls.empty() ? "" : " " + src_tls);
  std::string where =
      (target->host.find(':') != std::string::npos ? "[" + target->host + "]" : target->host) +
      ":" + std::to_string(target->port);

  // The decoder follows the stream's caps: ask the server for them once.
  std::string kind = codec;
  if (kind == "auto") {
    auto caps = probe_stream_caps("tlsframesrc " + src_props);
    if (!caps) return kExitError;
    kind = codec_from_caps(*caps);
    info("stream: " + caps_summary(*caps));
  }
  if (muxer == "mp4mux" && kind == "jpeg") {
    error("MP4 recordings hold H.264 only and this stream is " + kind +
          ": record to a .mkv file instead");
    return kExitError;
  }

  std::map<std::string, std::string> vars = {
      {"HOST", quote(target->host)},
      {"PORT", std::to_string(target->port)},
      {"SERVER_NAME", server_name.empty() ? "" : "server-name=" + quote(server_name)},
      {"TLS", src_tls},
      {"NUM_BUFFERS", n_frames ? "num-buffers=" + std::to_string(n_frames) : ""},
      {"DECODE", decoder_for(kind)},
      {"DISPLAY", display_sink(*chosen)},
      {"RECORD", record.empty() ? ""
                                : "t. ! queue ! " + parser_for(kind) + muxer +
                                      " ! filesink location=" + quote(record)},
      {"SNAPSHOT", snapshot.empty() ? ""
                                    : "t. ! queue name=snapq ! " + decoder_for(kind) +
                                          " ! videoconvert ! jpegenc ! multifilesink "
                                          "name=snapshot post-messages=true location=" +
                                          quote(escape_percent(snapshot))},
  };
  int prepared = kExitError;
  GstElement *pipeline = prepare_pipeline("view", run, vars, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  GstElement *src = runner.require("src", "tlsframesrc");
  if (!src) return kExitError;
  ViewerCounter counter(src);
  counter.text();  // first sample for the rates
  StatusLine status(static_cast<unsigned>(run.interval));
  using Tick = std::pair<StatusLine *, ViewerCounter *>;
  guint tick = g_timeout_add_seconds_full(
      G_PRIORITY_DEFAULT, 1,
      [](gpointer d) -> gboolean {
        auto *pair = static_cast<Tick *>(d);
        pair->first->show(pair->second->text());
        return G_SOURCE_CONTINUE;
      },
      new Tick(&status, &counter), [](gpointer d) { delete static_cast<Tick *>(d); });
  // A snapshot alone ends the viewer once it is written.
  bool snapshot_only = !snapshot.empty() && record.empty() && *chosen == Display::kNone;
  bool snapshot_done = false;
  runner.on_element_message = [&](const GstStructure *s) {
    if (gst_structure_has_name(s, "tlsframesrc-connected")) {
      status.finish();
      const gchar *addr = gst_structure_get_string(s, "address");
      info(std::string("connected to ") + (addr ? addr : where) + " (TLS verified)");
    } else if (gst_structure_has_name(s, "tlsframesrc-disconnected")) {
      status.finish();
      const gchar *reason = gst_structure_get_string(s, "reason");
      info(std::string("disconnected: ") + (reason ? reason : "?"));
    } else if (gst_structure_has_name(s, "GstMultiFileSink") && !snapshot_done) {
      // One frame is enough: later ones are dropped before they are decoded.
      snapshot_done = true;
      drop_after_first(runner.element("snapq"));
      status.finish();
      info("snapshot written to " + snapshot);
      if (snapshot_only) runner.stop();
    }
  };
  runner.hint_for_error = [](GstMessage *msg) { return client_error_hint(msg); };
  runner.on_eos = [&] {
    status.finish();
    info("end of stream after " + std::to_string(counter.frames()) + " frames");
  };
  if (!record.empty()) info("recording to " + record + " (" + muxer + ", not re-encoded)");
#ifdef TLSFRAME_HAVE_OPENCV
  std::unique_ptr<OpenCvViewer> viewer;
  if (*chosen == Display::kOpenCv) {
    viewer = std::make_unique<OpenCvViewer>(runner.element("cvsink"), src, "tlsframe " + where);
  }
#endif
#ifdef TLSFRAME_HAVE_OPENCV
  if (viewer) runner.step = [&]() { return viewer->step(); };
#endif
  int result = runner.run();
  g_source_remove(tick);
  status.finish();
  if (result == kExitOk && !record.empty()) {
    struct stat st;
    if (stat(record.c_str(), &st) == 0) {
      info("recorded " + std::to_string(st.st_size) + " bytes to " + record);
    }
  }
  return result;
}

}  // namespace tlsframe::tool
