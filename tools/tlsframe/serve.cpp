// `tlsframe serve`: camera (or test pattern, or file) -> encoder -> tlsframesink; with
// --stream NAME=SOURCE, several named streams on one port, each from its own source(s):
// a stream given several sources has an input-selector before its encoder, switched by
// commands on standard input. With --rendition, each stream is several H.264 encodings of
// its one capture (a tee, then one encoder branch and tlsframesink per rendition).
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>

#include "access.h"
#include "cli.h"
#include "commands.h"
#include "first_run.h"
#include "renditions.h"
#include "runner.h"
#include "server_output.h"
#include "source.h"
#include "streams.h"
#include "switcher.h"
#include "templates.h"
#include "tls_files.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSummary =
    "Streams video to every viewer that connects, over TLS.\n\n"
    "--source: auto (default): a V4L2 camera if one delivers a frame, else OpenCV camera 0,\n"
    "else a test pattern; or v4l2[:DEVICE], opencv[:INDEX] (opencv:FILE reads a video file\n"
    "through OpenCV), test[:PATTERN] (a videotestsrc pattern: ball, smpte, ...), file:PATH.\n\n"
    "--stream NAME=SOURCE (instead of --source, repeatable): serves the named stream NAME from\n"
    "SOURCE (same syntax), all streams on one port; viewers run tlsframe view HOST:PORT/NAME.\n"
    "NAME given again adds a source to that stream: the first is shown, and the command\n"
    "`switch NAME INDEX|SOURCE` on standard input switches to another while viewers stay\n"
    "connected (also `list`, `help`). An empty NAME is the default stream.\n\n"
    "Certificates: --certs DIR holds server.pem, server.key (and ca.pem for --mtls). The\n"
    "default is the per-user directory ${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs; on the\n"
    "first run serve makes a CA and a certificate for this machine there (existing files\n"
    "are never replaced) and prints what viewers run.\n\n"
    "Who may watch, with --mtls: a CRL beside the CA (DIR/crl.pem, written by tlsframe certs\n"
    "--revoke) is used when present and reloaded when it changes or on SIGHUP; connected\n"
    "viewers it revokes are cut off. --allow IDENTITY (repeatable) admits only client\n"
    "certificates with that identity: CN=NAME, DNS:NAME, URI:URI, email:ADDRESS or\n"
    "sha256:FINGERPRINT; to every stream, or NAME/IDENTITY to the stream NAME alone.\n\n"
    "Viewers on slow links: --rendition NAME=WIDTHxHEIGHT@KBPS (repeatable, or several\n"
    "separated by commas) makes each stream several H.264 encodings of its one capture, e.g.\n"
    "--rendition 720p=1280x720@2500,360p=640x360@500; --rendition default is that ladder.\n"
    "Each viewer gets one rendition: the server's choice for its link (steps down quickly\n"
    "when it falls behind, up cautiously), or the one it asks for (tlsframe view --rendition\n"
    "NAME). --rendition implies --codec h264 and replaces --width, --height and --bitrate.\n"
    "The default ladder has no JPEG rendition: a viewer's decoder is chosen for the codec it\n"
    "starts with, and a 640x360 JPEG at 5 fps is not lighter than the 360p H.264 at full\n"
    "rate (0.3 to 1.6 Mbit/s measured on test patterns, against 500 kbit/s).";
constexpr const char *kDescription = "Ctrl-C sends end of stream to every viewer and exits.";

// One stream as planned from the command line.
struct Planned {
  std::string name;                 // stream-name ("" = the default stream)
  std::string sink;                 // element names
  std::string selector;             // "" with one source
  std::vector<std::string> sinks;   // one per rendition (the first is `sink`); {sink} without
                                    // renditions
  std::string tee;                  // "" without renditions
  std::vector<std::string> labels;  // the sources as given
  std::vector<Source> sources;
};

// --allow for the streams of `specs`: each stream's identities, or nullopt after a usage
// error line. Identities come from client certificates: --allow needs --mtls.
std::optional<std::vector<std::vector<std::string>>> plan_allow(
    const std::vector<std::string> &allow, const TlsOptions &tls,
    const std::vector<StreamSpec> &specs) {
  if (!allow.empty() && !tls.mtls) {
    error(
        "--allow needs --mtls: identities are read from client certificates, which viewers "
        "present only to a server with --mtls");
    return std::nullopt;
  }
  std::vector<std::string> names;
  for (const auto &spec : specs) names.push_back(spec.name);
  return parse_allow_options(allow, names);
}

// authorized-clients for each stream's sinks (every rendition's: they must agree) when the
// stream has --allow identities.
void add_allow_values(const std::vector<std::vector<std::string>> &allowed,
                      const std::vector<Planned> &plan, PropertyValues *values) {
  for (size_t i = 0; i < plan.size() && i < allowed.size(); ++i) {
    if (allowed[i].empty()) continue;
    for (const auto &sink : plan[i].sinks) {
      values->push_back({sink, "authorized-clients", authorized_clients_value(allowed[i]), true});
    }
  }
}

// Once PLAYING: who may watch each stream (only said when --allow restricts one).
void say_allowed(const std::vector<std::vector<std::string>> &allowed,
                 const std::vector<std::string> &names, bool several) {
  bool any = false;
  for (const auto &list : allowed) any = any || !list.empty();
  if (!any) return;
  for (size_t i = 0; i < allowed.size() && i < names.size(); ++i) {
    std::string prefix = several ? "stream " + stream_label(names[i]) + ": " : "";
    if (allowed[i].empty()) {
      info(prefix + "any client certificate the CA signed may watch (no --allow for it)");
      continue;
    }
    std::string list;
    for (const auto &id : allowed[i]) list += (list.empty() ? "" : ", ") + id;
    info(prefix + "only these client certificates may watch: " + list);
  }
}

// The last sink warning printed and when (g_get_monotonic_time, microseconds).
struct LastWarning {
  std::string text;
  gint64 at = 0;
};

// A warning from one of our sinks, once: sinks sharing a port each post the same one
// for one reload (within a second); an expired CRL gets the command that renews it.
void say_sink_warning(GstMessage *msg, const std::vector<ServedStream> &served, const CrlWatch &crl,
                      ServerOutput &output, LastWarning *last) {
  if (!is_served_sink(served, GST_MESSAGE_SRC(msg))) return;
  GError *err = nullptr;
  gst_message_parse_warning(msg, &err, nullptr);
  std::string text = err ? err->message : "";
  g_clear_error(&err);
  const gint64 now = g_get_monotonic_time();
  if (text.empty() || (text == last->text && now - last->at < G_USEC_PER_SEC)) return;
  *last = {text, now};
  if (text.find("crl-file") != std::string::npos && text.find("next update") != std::string::npos) {
    text += " (sign it again with: " + crl.renew_command() +
            ", NAME any certificate already revoked; serve reloads it)";
  }
  output.say("warning: " + text);
}

// True when commands can be read from standard input without stopping the process: not a
// terminal, or a terminal whose foreground we are (a background read would get SIGTTIN).
bool stdin_readable() {
  if (!isatty(STDIN_FILENO)) return true;
  return tcgetpgrp(STDIN_FILENO) == getpgrp();
}

}  // namespace

int cmd_serve(int argc, char **argv) {
  // codec, width, height, bitrate: "" = not given (defaults below; --rendition replaces them).
  std::string source_spec, codec, width, height, fps = "30", quality = "85", bitrate, gop = "60",
                                                 port = "9999", bind = "0.0.0.0", max_clients = "0";
  std::vector<std::string> stream_options, allow_options, rendition_options;
  bool no_zerolatency = false;
  TlsOptions tls;
  Options opts("", kSummary, kDescription);
  opts.value("source", &source_spec, "S", "Video source (default auto; see above)");
  opts.repeated("stream", &stream_options, "NAME=SOURCE",
                "A named stream and its source (repeatable; see above)");
  opts.value("codec", &codec, "C", "jpeg (default) or h264 (the default with --rendition)");
  opts.value("width", &width, "W", "Width sent (default 640)");
  opts.value("height", &height, "H", "Height sent (default 480)");
  opts.value("fps", &fps, "F", "Frame rate sent (default 30)");
  opts.value("quality", &quality, "Q", "JPEG quality 1-100 (default 85)");
  opts.value("bitrate", &bitrate, "KBPS", "H.264 bitrate in kbit/s (default 2000)");
  opts.value("gop", &gop, "N", "H.264 keyframe interval in frames (default 60)");
  opts.repeated("rendition", &rendition_options, "NAME=WxH@KBPS[,...]|default",
                "H.264 renditions of each stream for viewers on slow links (repeatable; see "
                "above)");
  opts.flag("no-zerolatency", &no_zerolatency,
            "H.264 without tune=zerolatency (B-frames allowed, more delay)");
  opts.value("port", &port, "N", "TCP port (default 9999; 0 = any free port, printed at start)");
  opts.value("bind", &bind, "ADDR", "Address to listen on (default 0.0.0.0; :: for IPv6 too)");
  opts.value("max-clients", &max_clients, "N", "Most viewers at once (default 0 = unlimited)");
  tls.declare(opts, true, false);
  opts.repeated("allow", &allow_options, "[NAME/]IDENTITY",
                "With --mtls: only this client certificate identity may watch (repeatable; see "
                "above)");
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, &positional);
  if (done >= 0) return done;
  if (!positional.empty()) {
    error("unexpected argument '" + positional[0] + "' (see --help)");
    return kExitUsage;
  }
  auto ladder = parse_rendition_options(rendition_options);
  if (!ladder) return kExitUsage;
  const bool renditions = !ladder->empty();
  if (renditions) {
    if (codec.empty()) codec = "h264";
    if (codec != "h264") {
      error("--rendition makes H.264 renditions: it needs --codec h264, not --codec " + codec);
      return kExitUsage;
    }
    if (!width.empty() || !height.empty() || !bitrate.empty()) {
      error(
          "--rendition gives each rendition its size and bitrate: --width, --height and "
          "--bitrate do not go with it");
      return kExitUsage;
    }
    // The capture is made once, at the largest rendition's size.
    long wmax = 0, hmax = 0;
    for (const auto &r : *ladder) {
      wmax = std::max(wmax, r.width);
      hmax = std::max(hmax, r.height);
    }
    width = std::to_string(wmax);
    height = std::to_string(hmax);
    bitrate = std::to_string(ladder->front().kbps);
  }
  if (codec.empty()) codec = "jpeg";
  if (width.empty()) width = "640";
  if (height.empty()) height = "480";
  if (bitrate.empty()) bitrate = "2000";
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
  // Without --stream: one default stream from --source, with the single-stream element
  // names ("source", "sink") that --pipeline templates and --print-pipeline users know.
  const bool several = !stream_options.empty();
  if (several && !source_spec.empty()) {
    error(
        "--source and --stream do not go together: give each stream its source with "
        "--stream NAME=SOURCE");
    return kExitUsage;
  }
  std::vector<StreamSpec> specs = {{"", {source_spec.empty() ? "auto" : source_spec}}};
  if (several) {
    auto parsed = parse_stream_options(stream_options);
    if (!parsed) return kExitUsage;
    specs = *parsed;
  }
  auto allowed = plan_allow(allow_options, tls, specs);
  if (!allowed) return kExitUsage;
  if (!init_gstreamer()) return kExitError;

  // The sources first: a bad --source must not leave certificates behind. --print-pipeline
  // must not touch devices: auto prints the test pattern choice as well.
  std::vector<Planned> plan;
  for (size_t i = 0; i < specs.size(); ++i) {
    Planned ps{specs[i].name,
               several ? sink_element(i) : "sink",
               specs[i].sources.size() > 1 ? selector_element(i) : "",
               {},
               "",
               specs[i].sources,
               {}};
    ps.sinks = {ps.sink};
    if (renditions) {
      ps.sinks.clear();
      for (size_t k = 0; k < ladder->size(); ++k) {
        ps.sinks.push_back(rendition_sink_element(ps.sink, k));
      }
      ps.sink = ps.sinks[0];
      ps.tee = tee_element(several ? sink_element(i) : "sink");
    }
    for (size_t k = 0; k < ps.labels.size(); ++k) {
      const std::string &spec = ps.labels[k];
      auto source = choose_source(run.print && spec == "auto" ? "test" : spec,
                                  several ? source_element(i, k) : "source");
      if (!source) {
        if (several) error("in --stream " + specs[i].name + "=" + spec);
        return kExitError;
      }
      ps.sources.push_back(*source);
    }
    plan.push_back(std::move(ps));
  }

  // First run: make the per-user certificates (not for --print-pipeline, which prints the
  // paths serve would use and changes nothing).
  bool fresh = false;
  if (!ensure_server_certs(tls, run.print, &fresh)) return kExitError;

  // Sinks share one listener only on a fixed port: for several streams and --port 0, a
  // free port is reserved now and given to every sink (released once they listen).
  PortReservation reservation;
  if (p == 0 && (plan.size() > 1 || renditions) && !run.print) {
    if (!reservation.reserve(bind)) return kExitError;
    p = reservation.port();
  }

  std::map<std::string, std::string> vars = {
      {"WIDTH", std::to_string(w)},
      {"HEIGHT", std::to_string(h)},
      {"FRAMERATE", std::to_string(f) + "/1"},
      {"QUALITY", std::to_string(q)},
      {"BITRATE", std::to_string(br)},
      {"GOP", std::to_string(g)},
      {"TUNE", no_zerolatency ? "" : "tune=zerolatency"},
      {"PORT", std::to_string(p)},
      {"MAX_CLIENTS", std::to_string(mc)},
      {"FORMAT", codec == "h264" ? ",format=I420" : ""},
  };
  std::string description;
  PropertyValues values;
  std::vector<std::string> sink_names;
  for (const auto &ps : plan) sink_names.insert(sink_names.end(), ps.sinks.begin(), ps.sinks.end());
  add_allow_values(*allowed, plan, &values);
  // With --mtls, the CRL beside the CA; it is checked before any sink uses it.
  CrlWatch crl(tls);
  if (tls.mtls && !crl.prepare(sink_names, &values)) return kExitError;
  for (const auto &ps : plan) {
    for (size_t k = 0; k < ps.sinks.size(); ++k) {
      const std::string &sink = ps.sinks[k];
      values.push_back({sink, "host", bind});
      if (several && !ps.name.empty()) values.push_back({sink, "stream-name", ps.name});
      if (renditions) values.push_back({sink, "rendition", (*ladder)[k].name});
      if (!sink_tls_values(tls, sink, &values, !(run.print && fresh))) return kExitError;
    }
    // Each source scaled and paced to the stream's raw video; with several, to the very same
    // caps, into an input-selector that drops what inactive sources send (each is live and
    // timestamps on the pipeline clock, so nothing of theirs is worth keeping) and frames
    // older than the last one sent (from a source a little behind the previous one).
    auto stream_vars = vars;
    stream_vars["SINK"] = ps.sink;
    stream_vars["SHAPE"] =
        ps.selector.empty()
            ? ""
            : ",pixel-aspect-ratio=1/1,interlace-mode=progressive,colorimetry=bt601";
    std::vector<std::string> inputs;
    for (const auto &src : ps.sources) {
      values.insert(values.end(), src.values.begin(), src.values.end());
      stream_vars["SOURCE"] = src.launch;
      auto input = pipeline_from_template("serve-input", "", stream_vars);
      if (!input) return kExitError;
      inputs.push_back(*input);
    }
    if (ps.selector.empty()) {
      stream_vars["INPUT"] = inputs[0];
    } else {
      stream_vars["INPUT"] =
          "input-selector name=" + ps.selector + " sync-streams=false drop-backwards=true";
      stream_vars["SOURCE"] = stream_vars["INPUT"];  // for --pipeline templates that want it
    }
    if (!renditions) {
      auto part = pipeline_from_template("serve-" + codec, run.pipeline_file, stream_vars);
      if (!part) return kExitError;
      description += (description.empty() ? "" : " ") + *part;
    } else {
      // One capture into a tee; per rendition a branch (serve-rendition.pipeline) as the
      // INPUT of its own serve-h264.pipeline (or --pipeline FILE), each with its own sink.
      description +=
          (description.empty() ? "" : " ") + stream_vars["INPUT"] + " ! tee name=" + ps.tee;
      for (size_t k = 0; k < ladder->size(); ++k) {
        const RenditionSpec &r = (*ladder)[k];
        auto branch_vars = stream_vars;
        branch_vars["TEE"] = ps.tee;
        branch_vars["WIDTH"] = std::to_string(r.width);
        branch_vars["HEIGHT"] = std::to_string(r.height);
        branch_vars["BITRATE"] = std::to_string(r.kbps);
        branch_vars["SINK"] = ps.sinks[k];
        auto input = pipeline_from_template("serve-rendition", "", branch_vars);
        if (!input) return kExitError;
        branch_vars["INPUT"] = *input;
        auto part = pipeline_from_template("serve-h264", run.pipeline_file, branch_vars);
        if (!part) return kExitError;
        description += " " + *part;
      }
    }
    for (size_t k = 0; inputs.size() > 1 && k < inputs.size(); ++k) {
      description += " " + inputs[k] + " ! " + ps.selector + ".sink_" + std::to_string(k);
    }
  }

  int prepared = kExitError;
  GstElement *pipeline = prepare_description(description, run, values, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  std::vector<ServedStream> served;
  Switcher switcher;
  // Element name -> the stream (and source) it belongs to, for error lines.
  std::map<std::string, std::string> owner;
  for (size_t i = 0; i < plan.size(); ++i) {
    const Planned &ps = plan[i];
    ServedStream st{nullptr, ps.name, {}};
    std::vector<GstElement *> stream_sinks;
    for (size_t k = 0; k < ps.sinks.size(); ++k) {
      GstElement *sink = runner.require(ps.sinks[k].c_str(), "tlsframesink");
      if (!sink) return kExitError;
      stream_sinks.push_back(sink);
      if (renditions) {
        const RenditionSpec &r = (*ladder)[k];
        st.renditions.push_back({sink, r.name,
                                 std::to_string(r.width) + "x" + std::to_string(r.height) + " " +
                                     std::to_string(r.kbps) + " kbit/s"});
      }
      if (several || renditions) {
        owner[ps.sinks[k]] = (several ? "stream " + stream_label(ps.name) : std::string()) +
                             (several && renditions ? ", " : "") +
                             (renditions ? "rendition " + (*ladder)[k].name : "");
      }
    }
    st.sink = stream_sinks[0];
    served.push_back(st);
    GstElement *selector = nullptr;
    if (!ps.selector.empty()) {
      selector = runner.require(ps.selector.c_str(), "input-selector");
      if (!selector) return kExitError;
    }
    std::vector<Switcher::Input> inputs;
    for (size_t k = 0; k < ps.sources.size(); ++k) {
      inputs.push_back({ps.labels[k], ps.sources[k].what});
      if (several) {
        owner[source_element(i, k)] = "stream " + stream_label(ps.name) + ", source [" +
                                      std::to_string(k) + "] " + ps.labels[k];
      }
    }
    if (!switcher.add(ps.name, selector, stream_sinks, std::move(inputs))) return kExitError;
  }
  const bool switchable = !switcher.example().empty();
  const std::vector<GstElement *> sinks = served_sinks(served);

  const std::string h264_line = " at " + std::to_string(f) + " fps, " +
                                (renditions ? "" : std::to_string(br) + " kbit/s, ") +
                                "keyframe every " + std::to_string(g) + " frames" +
                                (no_zerolatency ? "" : ", zero-latency tuning");
  std::string codec_line =
      codec == "jpeg" ? "JPEG " + std::to_string(w) + "x" + std::to_string(h) + " at " +
                            std::to_string(f) + " fps, quality " + std::to_string(q)
      : renditions ? "H.264 renditions " + ladder_text(*ladder) + h264_line
                   : "H.264 " + std::to_string(w) + "x" + std::to_string(h) + h264_line;
  ServerOutput output(served, bind, server_cert_path(tls), static_cast<unsigned>(run.interval));
  ViewerHint hint;
  std::string client = tls.mtls ? " --client NAME" : "";
  hint.client_options = client;
  std::string ca_here = tls.ca.empty() ? tls.dir + "/ca.pem" : tls.ca;
  hint.gst_options = " " + launch_argument("ca-file", ca_here);
  if (tls.mtls) hint.gst_options += " cert-file=client-NAME.pem key-file=client-NAME.key";
  if (!tls.ca.empty()) {
    hint.options = " --ca " + tls.ca + client;
  } else if (default_dir(tls)) {
    hint.options = client;  // the viewer's own per-user directory
    hint.ca_to_copy = tls.dir + "/ca.pem";
  } else {
    hint.options = " --certs " + tls.dir + client;
  }
  std::unique_ptr<CommandReader> commands;
  // Printed once running, so a failure to start is the only line.
  runner.on_playing = [&] {
    reservation.release();  // every sink listens on the port now
    for (const auto &ps : plan) {
      for (size_t k = 0; k < ps.sources.size(); ++k) {
        const Source &src = ps.sources[k];
        std::string what = src.what + (src.why.empty() ? "" : ": " + src.why);
        if (!several) {
          info("source: " + what);
        } else {
          info("stream " + stream_label(ps.name) + ": source [" + std::to_string(k) + "] " +
               ps.labels[k] + ": " + what + (ps.sources.size() > 1 && k == 0 ? " (active)" : ""));
        }
      }
    }
    info(codec_line);
    output.announce(hint);
    std::vector<std::string> names;
    for (const auto &ps : plan) names.push_back(ps.name);
    say_allowed(*allowed, names, several);
    if (tls.mtls) {
      crl.start(sinks, [&](const std::string &text, bool is_error) { output.say(text, is_error); });
    } else if (crl.present()) {
      info(crl.path() +
           " is not used: without --mtls viewers are not asked for certificates, so there is "
           "nothing to revoke");
    }
    if (tls.mtls && default_dir(tls)) {
      info(
          "--mtls: make a viewer's client certificate with: tlsframe certs --client NAME (signed "
          "by the CA in " +
          tls.dir +
          "); a viewer elsewhere needs ca.pem, client-NAME.pem and "
          "client-NAME.key in its own per-user directory");
    }
    if (switchable && stdin_readable()) {
      commands = std::make_unique<CommandReader>([&](const std::string &line) {
        for (const auto &reply : switcher.command(line)) output.say(reply.text, !reply.ok);
      });
      info("commands on standard input: switch [NAME] INDEX|SOURCE, list, help (e.g. " +
           switcher.example() + ")");
    } else if (switchable) {
      info("standard input is a terminal this process is in the background of: no commands");
    }
  };
  LastWarning last_warning;
  runner.on_warning = [&](GstMessage *msg) {
    say_sink_warning(msg, served, crl, output, &last_warning);
  };
  runner.on_eos = [&] {
    output.finish();
    info("end of stream sent to every viewer");
  };
  runner.hint_for_error = [&](GstMessage *msg) -> std::string {
    GError *err = nullptr;
    gst_message_parse_error(msg, &err, nullptr);
    std::string hint_text;
    const bool from_sink = is_served_sink(served, GST_MESSAGE_SRC(msg));
    if (err && g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ) &&
        from_sink) {
      hint_text = "is another server using port " + std::to_string(p) + "? try --port 0";
    }
    g_clear_error(&err);
    // Which stream (and source) failed: the first named ancestor we made.
    for (GstObject *o = GST_MESSAGE_SRC(msg); o; o = GST_OBJECT_PARENT(o)) {
      auto it = owner.find(GST_OBJECT_NAME(o));
      if (it != owner.end()) {
        hint_text = it->second + (hint_text.empty() ? "" : "; " + hint_text);
        break;
      }
    }
    return hint_text;
  };
  int status = runner.run();
  crl.stop();
  commands.reset();
  output.finish();
  return status;
}

}  // namespace tlsframe::tool
