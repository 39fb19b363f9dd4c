// `tlsframe relay --from HOST[:PORT][/NAME]`: tlsframesrc -> queue -> tlsframesink.
// One upstream connection (one stream: the default or NAME), served again as
// this relay's default stream; relays of relays form a tree. With --all, every
// stream the upstream lists, each as its own tlsframesrc -> tlsframesink branch
// serving the same name on the relay's one port.
#include <map>

#include "cli.h"
#include "commands.h"
#include "runner.h"
#include "server_output.h"
#include "streams.h"
#include "templates.h"
#include "tls_files.h"
#include "view_support.h"

namespace tlsframe::tool {

namespace {

constexpr int kDefaultPort = 9999;

constexpr const char *kSummary =
    "Receives one stream from a server (or another relay) and serves it again, untouched.\n"
    "Reconnects upstream when the connection drops. HOST may be a name, an IPv4 address or\n"
    "[IPv6]; PORT defaults to 9999. /NAME relays that named stream of a protocol version 2\n"
    "server (none = its default stream); tlsframe://HOST[:PORT][/NAME] works too. --all\n"
    "relays every stream the server lists at start, each under its own name, on one port.\n\n"
    "Certificates: --certs DIR (default: the per-user directory\n"
    "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs) holds ca.pem to trust upstream and\n"
    "server.pem/server.key to serve.";

// One relayed stream: upstream name (= the name served) and element names.
struct Relayed {
  std::string name, src, sink;
};

}  // namespace

int cmd_relay(int argc, char **argv) {
  std::string from, port = "9999", bind = "0.0.0.0", server_name, max_clients = "0";
  bool all = false;
  TlsOptions tls;
  Options opts("[--from] HOST[:PORT][/NAME]", kSummary);
  opts.value("from", &from, "HOST[:PORT][/NAME]",
             "The upstream server (port 9999 by default) and stream (default: its default stream)");
  opts.flag("all", &all, "Relay every stream of the upstream server, each under its name");
  opts.value("port", &port, "N", "Port to serve on (default 9999; 0 = any free port)");
  opts.value("bind", &bind, "ADDR", "Address to listen on (default 0.0.0.0)");
  opts.value("server-name", &server_name, "NAME",
             "Name the upstream certificate must have (default: its HOST)");
  opts.value("max-clients", &max_clients, "N", "Most clients at once (default 0 = unlimited)");
  tls.declare(opts, true, true);
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, &positional);
  if (done >= 0) return done;
  if (from.empty() && positional.size() == 1) from = positional[0];
  if (from.empty()) {
    error("which upstream server? usage: tlsframe relay --from HOST[:PORT][/NAME] (see --help)");
    return kExitUsage;
  }
  auto upstream = read_target(from, kDefaultPort);
  if (!upstream) return kExitUsage;
  if (all && !upstream->stream.empty()) {
    error("--all relays every stream of a server: give HOST[:PORT], not a stream ('" +
          upstream->stream + "')");
    return kExitUsage;
  }
  long p, mc;
  if (!parse_int("port", port, 0, 65535, &p) ||
      !parse_int("max-clients", max_clients, 0, 1 << 20, &mc)) {
    return kExitUsage;
  }
  if (!init_gstreamer()) return kExitError;

  // One stream (the named or default one, with the single-stream element names), or every
  // stream the upstream lists now.
  std::vector<Relayed> relayed = {{upstream->stream, "src", "sink"}};
  if (all) {
    PropertyValues list_values = {{"src", "host", upstream->host},
                                  {"src", "port", std::to_string(upstream->port)}};
    if (!server_name.empty()) list_values.push_back({"src", "server-name", server_name});
    if (!src_tls_values(tls, "src", &list_values)) return kExitError;
    auto list = list_streams(list_values);
    if (!list) return kExitError;
    if (list->empty()) {
      error("the server at " + target_text(*upstream) + " has no streams to relay");
      return kExitError;
    }
    relayed.clear();
    for (size_t i = 0; i < list->size(); ++i) {
      relayed.push_back({(*list)[i].name, src_element(i), sink_element(i)});
    }
  }

  // Sinks share one listener only on a fixed port (see PortReservation).
  PortReservation reservation;
  if (p == 0 && relayed.size() > 1 && !run.print) {
    if (!reservation.reserve(bind)) return kExitError;
    p = reservation.port();
  }

  // User text goes to the elements as properties, never into the pipeline text. Upstream
  // trust comes from --ca (or DIR/ca.pem); our own --mtls also uses it.
  PropertyValues values;
  std::string description;
  for (const auto &r : relayed) {
    values.push_back({r.src, "host", upstream->host});
    values.push_back({r.sink, "host", bind});
    if (!r.name.empty()) {
      values.push_back({r.src, "stream-name", r.name});
      // One stream alone is served as the relay's default stream, as before --all existed.
      if (all) values.push_back({r.sink, "stream-name", r.name});
    }
    if (!server_name.empty()) values.push_back({r.src, "server-name", server_name});
    if (!src_tls_values(tls, r.src, &values) || !sink_tls_values(tls, r.sink, &values)) {
      return kExitError;
    }
    auto part = pipeline_from_template("relay", run.pipeline_file,
                                       {{"UPSTREAM_PORT", std::to_string(upstream->port)},
                                        {"PORT", std::to_string(p)},
                                        {"MAX_CLIENTS", std::to_string(mc)},
                                        {"SRC", r.src},
                                        {"SINK", r.sink}});
    if (!part) return kExitError;
    description += (description.empty() ? "" : " ") + *part;
  }
  int prepared = kExitError;
  GstElement *pipeline = prepare_description(description, run, values, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  std::vector<ServedStream> served;
  std::map<GstElement *, std::string> src_names;  // tlsframesrc -> its stream, for messages
  for (const auto &r : relayed) {
    GstElement *sink = runner.require(r.sink.c_str(), "tlsframesink");
    GstElement *src = runner.require(r.src.c_str(), "tlsframesrc");
    if (!sink || !src) return kExitError;
    served.push_back({sink, all ? r.name : "", {}});
    src_names[src] = r.name;
  }
  const std::string &from_text = from;
  ServerOutput output(served, bind, server_cert_path(tls), static_cast<unsigned>(run.interval));
  ViewerHint hint;
  std::string ca_here = tls.dir + "/ca.pem";
  hint.gst_options = " " + launch_argument("ca-file", ca_here);
  if (default_dir(tls)) {
    hint.ca_to_copy = ca_here;
  } else {
    hint.options = " --certs " + tls.dir;
  }
  runner.on_playing = [&] {
    reservation.release();  // every sink listens on the port now
    output.announce(hint);
  };
  auto which = [&](GstObject *from) -> std::string {
    auto it = src_names.find(GST_ELEMENT(from));
    return all && it != src_names.end() ? " (stream " + stream_label(it->second) + ")" : "";
  };
  runner.on_element_message = [&](const GstStructure *s, GstObject *from) {
    if (gst_structure_has_name(s, "tlsframesrc-connected")) {
      output.finish();
      const gchar *addr = gst_structure_get_string(s, "address");
      info(std::string("upstream connected: ") + (addr ? addr : from_text) + which(from));
    } else if (gst_structure_has_name(s, "tlsframesrc-disconnected")) {
      output.finish();
      const gchar *reason = gst_structure_get_string(s, "reason");
      info(std::string("upstream lost, reconnecting: ") + (reason ? reason : "?") + which(from));
    }
  };
  runner.hint_for_error = [](GstMessage *msg) { return client_error_hint(msg); };
  runner.on_eos = [&] {
    output.finish();
    info("end of stream from upstream, passed on to every client");
  };
  if (all) {
    std::string names;
    for (const auto &r : relayed) names += (names.empty() ? "" : ", ") + stream_label(r.name);
    info("relaying " + std::to_string(relayed.size()) + " streams of " + target_text(*upstream) +
         " (upstream: " + names + ") to port " + std::to_string(p));
  } else {
    info("relaying " + from + " (upstream) to port " + std::to_string(p));
  }
  int status = runner.run();
  output.finish();
  return status;
}

}  // namespace tlsframe::tool
