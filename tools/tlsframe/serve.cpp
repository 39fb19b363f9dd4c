// `tlsframe serve`: camera (or test pattern, or file) -> encoder -> tlsframesink.
#include <map>

#include "cli.h"
#include "commands.h"
#include "first_run.h"
#include "runner.h"
#include "server_output.h"
#include "source.h"
#include "tls_files.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSummary =
    "Streams video to every viewer that connects, over TLS.\n\n"
    "--source: auto (default): a V4L2 camera if one delivers a frame, else OpenCV camera 0,\n"
    "else a test pattern; or v4l2[:DEVICE], opencv[:INDEX] (opencv:FILE reads a video file\n"
    "through OpenCV), test[:PATTERN] (a videotestsrc pattern: ball, smpte, ...), file:PATH.\n\n"
    "Certificates: --certs DIR holds server.pem, server.key (and ca.pem for --mtls). The\n"
    "default is the per-user directory ${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs; on the\n"
    "first run serve makes a CA and a certificate for this machine there (existing files\n"
    "are never replaced) and prints what viewers run.";
constexpr const char *kDescription = "Ctrl-C sends end of stream to every viewer and exits.";

}  // namespace

int cmd_serve(int argc, char **argv) {
  std::string source_spec = "auto", codec = "jpeg", width = "640", height = "480", fps = "30",
              quality = "85", bitrate = "2000", gop = "60", port = "9999", bind = "0.0.0.0",
              max_clients = "0";
  bool no_zerolatency = false;
  TlsOptions tls;
  Options opts("", kSummary, kDescription);
  opts.value("source", &source_spec, "S", "Video source (default auto; see above)");
  opts.value("codec", &codec, "C", "jpeg (default) or h264");
  opts.value("width", &width, "W", "Width sent (default 640)");
  opts.value("height", &height, "H", "Height sent (default 480)");
  opts.value("fps", &fps, "F", "Frame rate sent (default 30)");
  opts.value("quality", &quality, "Q", "JPEG quality 1-100 (default 85)");
  opts.value("bitrate", &bitrate, "KBPS", "H.264 bitrate in kbit/s (default 2000)");
  opts.value("gop", &gop, "N", "H.264 keyframe interval in frames (default 60)");
  opts.flag("no-zerolatency", &no_zerolatency,
            "H.264 without tune=zerolatency (B-frames allowed, more delay)");
  opts.value("port", &port, "N", "TCP port (default 9999; 0 = any free port, printed at start)");
  opts.value("bind", &bind, "ADDR", "Address to listen on (default 0.0.0.0; :: for IPv6 too)");
  opts.value("max-clients", &max_clients, "N", "Most viewers at once (default 0 = unlimited)");
  tls.declare(opts, true, false);
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, &positional);
  if (done >= 0) return done;
  if (!positional.empty()) {
    error("unexpected argument '" + positional[0] + "' (see --help)");
    return kExitUsage;
  }
  long w, h, f, q, br, g, p, mc;
  if (!parse_int("width", width, 16, 7680, &w) || !parse_int("height", height, 16, 4320, &h) ||
      !parse_int("fps", fps, 1, 240, &f) || !parse_int("quality", quality, 1, 100, &q) ||
      !parse_int("bitrate", bitrate, 16, 200000, &br) || !parse_int("gop", gop, 1, 10000, &g) ||
      !parse_int("port", port, 0, 65535, &p) ||
      !parse_int("max-clients", max_clients, 0, 1 << 20, &mc)) {
    return kExitUsage;
  }
  if (codec != "jpeg" && codec != "h264") {
    error("--codec must be jpeg or h264, not '" + codec + "'");
    return kExitUsage;
  }
  if (!init_gstreamer()) return kExitError;

  // The source first: a bad --source must not leave certificates behind. --print-pipeline
  // must not touch devices: auto prints the test pattern choice as well.
  auto source = choose_source(run.print && source_spec == "auto" ? "test" : source_spec);
  if (!source) return kExitError;

  // First run: make the per-user certificates (not for --print-pipeline, which prints the
  // paths serve would use and changes nothing).
  bool fresh = false;
  if (!ensure_server_certs(tls, run.print, &fresh)) return kExitError;
  PropertyValues values;
  values.push_back({"sink", "host", bind});
  if (!sink_tls_values(tls, "sink", &values, !(run.print && fresh))) return kExitError;
  values.insert(values.end(), source->values.begin(), source->values.end());

  std::map<std::string, std::string> vars = {
      {"SOURCE", source->launch},     {"WIDTH", std::to_string(w)},
      {"HEIGHT", std::to_string(h)},  {"FRAMERATE", std::to_string(f) + "/1"},
      {"QUALITY", std::to_string(q)}, {"BITRATE", std::to_string(br)},
      {"GOP", std::to_string(g)},     {"TUNE", no_zerolatency ? "" : "tune=zerolatency"},
      {"PORT", std::to_string(p)},    {"MAX_CLIENTS", std::to_string(mc)},
  };
  int prepared = kExitError;
  GstElement *pipeline = prepare_pipeline("serve-" + codec, run, vars, values, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  GstElement *sink = runner.require("sink", "tlsframesink");
  if (!sink) return kExitError;
  std::string source_line =
      "source: " + source->what + (source->why.empty() ? "" : ": " + source->why);
  std::string codec_line = codec == "jpeg"
                               ? "JPEG " + std::to_string(w) + "x" + std::to_string(h) + " at " +
                                     std::to_string(f) + " fps, quality " + std::to_string(q)
                               : "H.264 " + std::to_string(w) + "x" + std::to_string(h) + " at " +
                                     std::to_string(f) + " fps, " + std::to_string(br) +
                                     " kbit/s, keyframe every " + std::to_string(g) + " frames" +
                                     (no_zerolatency ? "" : ", zero-latency tuning");
  ServerOutput output(sink, bind, server_cert_path(tls), static_cast<unsigned>(run.interval));
  ViewerHint hint;
  std::string client = tls.mtls ? " --client NAME" : "";
  if (!tls.ca.empty()) {
    hint.options = " --ca " + tls.ca + client;
  } else if (default_dir(tls)) {
    hint.options = client;  // the viewer's own per-user directory
    hint.ca_to_copy = tls.dir + "/ca.pem";
  } else {
    hint.options = " --certs " + tls.dir + client;
  }
  // Printed once running, so a failure to start is the only line.
  runner.on_playing = [&] {
    info(source_line);
    info(codec_line);
    output.announce(hint);
    if (tls.mtls && default_dir(tls)) {
      info(
          "--mtls: make a viewer's client certificate with: tlsframe certs --client NAME (signed "
          "by the CA in " +
          tls.dir +
          "); a viewer elsewhere needs ca.pem, client-NAME.pem and "
          "client-NAME.key in its own per-user directory");
    }
  };
  runner.on_eos = [&] {
    output.finish();
    info("end of stream sent to every viewer");
  };
  runner.hint_for_error = [&](GstMessage *msg) -> std::string {
    GError *err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    std::string hint_text;
    if (err && g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ) &&
        GST_MESSAGE_SRC(msg) == GST_OBJECT(sink)) {
      hint_text = "is another server using port " + std::to_string(p) + "? try --port 0";
    }
    g_clear_error(&err);
    return hint_text;
  };
  int status = runner.run();
  output.finish();
  return status;
}

}  // namespace tlsframe::tool
