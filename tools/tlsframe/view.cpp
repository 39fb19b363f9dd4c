// `tlsframe view HOST[:PORT][/NAME]`: tlsframesrc -> decoder -> window, plus
// an optional recording (remuxed, not re-encoded) and snapshot.
// `tlsframe view --list HOST[:PORT]`: the server's streams.
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>

#include "cli.h"
#include "commands.h"
#include "core/wire_fields.h"
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

constexpr const char *kSummary =
    "Connects to `tlsframe serve` (or a relay) and shows, records or snapshots the stream.\n"
    "HOST may be a name, an IPv4 address or [IPv6]; PORT defaults to 9999. NAME picks a\n"
    "named stream (protocol version 2 servers; none = the default stream); the form\n"
    "tlsframe://HOST[:PORT][/NAME] works too. --list prints the server's streams.\n\n"
    "Trust: DIR/ca.pem, where DIR is --certs or the per-user directory\n"
    "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs (where serve makes its CA on this machine);\n"
    "the system CAs when that file is absent; or, with --fingerprint FP, the server's\n"
    "certificate fingerprint as serve prints it (no CA file needed).\n\n"
    "Renditions: a stream served with several encodings (serve --rendition) sends each\n"
    "viewer one of them: by default (--rendition auto) the server's choice for this link,\n"
    "lower when frames back up, higher again once the link has room; --rendition NAME asks\n"
    "for one. view prints the rendition it gets and a line at each switch.";
constexpr const char *kDescription =
    "In the OpenCV window, q or Esc quits. Ctrl-C stops and finishes the recording.";

}  // namespace

int cmd_view(int argc, char **argv) {
  bool list = false;
  std::string display = "auto", record, snapshot, frames = "0", codec = "auto", server_name,
              port_text, rendition = "auto";
  TlsOptions tls;
  Options opts("HOST[:PORT][/NAME]", kSummary, kDescription);
  opts.flag("list", &list, "List the server's streams (name, caps, viewers) and exit");
  opts.value("display", &display, "D",
             "auto (default: an OpenCV window if built with OpenCV, else a GStreamer window, "
             "when a display exists), opencv, gst, or none");
  opts.value("record", &record, "FILE",
             "Also save the stream, remuxed without re-encoding: FILE.mkv or FILE.mp4");
  opts.value("snapshot", &snapshot, "FILE", "Save the first decoded frame as JPEG");
  opts.value("frames", &frames, "N", "Stop after N frames (0 = until the end or Ctrl-C)");
  opts.value("codec", &codec, "C", "auto (default: from the stream), jpeg, h264 or decodebin");
  opts.value("server-name", &server_name, "NAME",
             "Name the server certificate must have (default: HOST)");
  opts.value("port", &port_text, "N", "Server port (instead of HOST:PORT)");
  opts.value("rendition", &rendition, "NAME|auto",
             "Which rendition of a stream with several: auto (default: the server's choice for "
             "this link) or a name serve printed");
  tls.declare(opts, false, true);
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, &positional);
  if (done >= 0) return done;
  if (positional.size() != 1) {
    error(positional.empty() ? "which server? usage: tlsframe view HOST[:PORT][/NAME] (see --help)"
                             : "one server only, not '" + positional[1] + "'");
    return kExitUsage;
  }
  auto target = read_target(positional[0], kDefaultPort);
  if (!target) return kExitUsage;
  if (list && !target->stream.empty()) {
    error("--list takes a server, HOST[:PORT], not a stream ('" + target->stream + "')");
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
  if (rendition != tlsframe::wire::kRenditionAuto &&
      !tlsframe::wire::valid_rendition_name(rendition)) {
    error(
        "--rendition must be auto or a rendition name (1 to 64 of A-Z a-z 0-9 . _ -, not "
        "starting with '.'), not '" +
        rendition + "'");
    return kExitUsage;
  }
  std::string muxer;
  if (!record.empty() && !muxer_for(record, &muxer)) return kExitUsage;

  std::optional<Display> chosen = Display::kNone;  // --list shows nothing
  if (!list) {
    chosen = choose_display(display, !record.empty() || !snapshot.empty());
    if (!chosen) return kExitUsage;
  }
  if (!init_gstreamer()) return kExitError;

  // User text goes to the elements as properties, never into the pipeline text.
  PropertyValues src_values = {{"src", "host", target->host},
                               {"src", "port", std::to_string(target->port)}};
  if (!target->stream.empty()) src_values.push_back({"src", "stream-name", target->stream});
  if (!server_name.empty()) src_values.push_back({"src", "server-name", server_name});
  if (rendition != tlsframe::wire::kRenditionAuto) {
    src_values.push_back({"src", "rendition", rendition});
  }
  if (!src_tls_values(tls, "src", &src_values)) return kExitError;
  std::string where = target_text(*target);
  if (list) return print_stream_list(src_values);
  if (!target->stream.empty()) where += "/" + target->stream;

  // The decoder follows the stream's caps: ask the server for them once.
  std::string kind = codec;
  if (kind == "auto") {
    auto caps = probe_stream_caps(src_values);
    if (!caps) return kExitError;
    kind = codec_from_caps(*caps);
    info("stream: " + caps_summary(*caps));
  }
  if (muxer == "mp4mux" && kind == "jpeg") {
    error("MP4 recordings hold H.264 only and this stream is " + kind +
          ": record to a .mkv file instead");
    return kExitError;
  }

  PropertyValues values;
  for (const auto &v : src_values) {
    if (v.property != "port") values.push_back(v);  // the port is a number in the template
  }
  if (!record.empty()) values.push_back({"record", "location", record});
  if (!snapshot.empty()) values.push_back({"snapshot", "location", escape_percent(snapshot)});
  std::map<std::string, std::string> vars = {
      {"PORT", std::to_string(target->port)},
      {"NUM_BUFFERS", n_frames ? "num-buffers=" + std::to_string(n_frames) : ""},
      {"DECODE", decoder_for(kind)},
      {"DISPLAY", display_sink(*chosen)},
      {"RECORD", record.empty()
                     ? ""
                     : "t. ! queue ! " + parser_for(kind) + muxer + " ! filesink name=record"},
      {"SNAPSHOT", snapshot.empty() ? ""
                                    : "t. ! queue name=snapq ! " + decoder_for(kind) +
                                          " ! videoconvert ! jpegenc ! multifilesink "
                                          "name=snapshot post-messages=true"},
  };
  int prepared = kExitError;
  GstElement *pipeline = prepare_pipeline("view", run, vars, values, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  GstElement *src = runner.require("src", "tlsframesrc");
  if (!src) return kExitError;
  ViewerCounter counter(src);
  counter.text();  // first sample for the rates
  StatusLine status(static_cast<unsigned>(run.interval));
  // The rendition the server sends now ("" = the stream has one encoding); main thread.
  std::string current_rendition;
  auto with_rendition = [&](const std::string &text) {
    return current_rendition.empty() ? text : text + ", rendition " + current_rendition;
  };
  struct Tick {
    StatusLine *status;
    ViewerCounter *counter;
    const std::string *rendition;
  };
  guint tick = g_timeout_add_seconds_full(
      G_PRIORITY_DEFAULT, 1,
      [](gpointer d) -> gboolean {
        auto *t = static_cast<Tick *>(d);
        std::string text = t->counter->text();
        if (!t->rendition->empty()) text += ", rendition " + *t->rendition;
        t->status->show(text);
        return G_SOURCE_CONTINUE;
      },
      new Tick{&status, &counter, &current_rendition},
      [](gpointer d) { delete static_cast<Tick *>(d); });
  // A snapshot alone ends the viewer once it is written.
  bool snapshot_only = !snapshot.empty() && record.empty() && *chosen == Display::kNone;
  bool snapshot_done = false;
  runner.on_element_message = [&](const GstStructure *s, GstObject *) {
    if (gst_structure_has_name(s, "tlsframesrc-connected")) {
      status.finish();
      const gchar *addr = gst_structure_get_string(s, "address");
      const gchar *server = gst_structure_get_string(s, "server");
      const gchar *stream = gst_structure_get_string(s, "stream-name");
      int version = 1;
      gst_structure_get_int(s, "protocol-version", &version);
      std::string about;  // version 2: what the server's WELCOME said
      if (version >= 2) {
        about = ", protocol 2, stream " + std::string(stream && *stream ? stream : "(default)");
        if (server && *server) about += ", server " + std::string(server);
      }
      const gchar *now_on = gst_structure_get_string(s, "rendition");
      current_rendition = now_on ? now_on : "";
      if (!current_rendition.empty()) about += ", rendition " + current_rendition;
      info(std::string("connected to ") + (addr ? addr : where) +
           (tls.fingerprint.empty() ? " (TLS verified)" : " (TLS, pinned certificate)") + about);
      // Every rendition the server offers ("720p,360p" in the message, highest rate first).
      const gchar *all = gst_structure_get_string(s, "renditions");
      if (all && *all) {
        std::string names;
        for (const gchar *c = all; *c; ++c) {
          if (*c == ',')
            names += ", ";
          else
            names += *c;
        }
        info("renditions: " + names);
      }
      if (rendition != tlsframe::wire::kRenditionAuto && current_rendition.empty()) {
        info("--rendition " + rendition + " ignored: this stream has a single encoding");
      } else if (rendition != tlsframe::wire::kRenditionAuto && current_rendition != rendition) {
        info("the stream has no rendition \"" + rendition + "\": the server chooses (" +
             current_rendition + " now)");
      }
    } else if (gst_structure_has_name(s, "tlsframesrc-rendition")) {
      // The server switched this viewer (at a keyframe of the new rendition).
      status.finish();
      const gchar *now_on = gst_structure_get_string(s, "rendition");
      const gchar *reason = gst_structure_get_string(s, "reason");
      current_rendition = now_on ? now_on : "";
      info("rendition: " + current_rendition +
           (reason && *reason ? " (" + std::string(reason) + ")" : ""));
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
    info(with_rendition("end of stream after " + std::to_string(counter.frames()) + " frames"));
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
