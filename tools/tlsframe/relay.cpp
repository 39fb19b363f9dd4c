// `tlsframe relay --from HOST[:PORT][/NAME]`: tlsframesrc -> queue -> tlsframesink.
// One upstream connection (one stream: the default or NAME), served again as
// this relay's default stream; relays of relays form a tree. Relaying every
// stream of a server needs the multi-stream sink (not yet).
#include <map>

#include "cli.h"
#include "commands.h"
#include "runner.h"
#include "server_output.h"
#include "tls_files.h"
#include "view_support.h"

namespace tlsframe::tool {

namespace {

constexpr int kDefaultPort = 9999;

constexpr const char *kSummary =
    "Receives one stream from a server (or another relay) and serves it again, untouched.\n"
    "Reconnects upstream when the connection drops. HOST may be a name, an IPv4 address or\n"
    "[IPv6]; PORT defaults to 9999. /NAME relays that named stream of a protocol version 2\n"
    "server (none = its default stream); tlsframe://HOST[:PORT][/NAME] works too.\n\n"
    "Certificates: --certs DIR (default: the per-user directory\n"
    "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs) holds ca.pem to trust upstream and\n"
    "server.pem/server.key to serve.";

}  // namespace

int cmd_relay(int argc, char **argv) {
  std::string from, port = "9999", bind = "0.0.0.0", server_name, max_clients = "0";
  TlsOptions tls;
  Options opts("[--from] HOST[:PORT][/NAME]", kSummary);
  opts.value("from", &from, "HOST[:PORT][/NAME]",
             "The upstream server (port 9999 by default) and stream (default: its default stream)");
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
  long p, mc;
  if (!parse_int("port", port, 0, 65535, &p) ||
      !parse_int("max-clients", max_clients, 0, 1 << 20, &mc)) {
    return kExitUsage;
  }
  if (!init_gstreamer()) return kExitError;

  // User text goes to the elements as properties, never into the pipeline text. Upstream
  // trust comes from --ca (or DIR/ca.pem); our own --mtls also uses it.
  PropertyValues values = {{"src", "host", upstream->host}, {"sink", "host", bind}};
  if (!upstream->stream.empty()) values.push_back({"src", "stream-name", upstream->stream});
  if (!server_name.empty()) values.push_back({"src", "server-name", server_name});
  if (!src_tls_values(tls, "src", &values) || !sink_tls_values(tls, "sink", &values)) {
    return kExitError;
  }
  std::map<std::string, std::string> vars = {
      {"UPSTREAM_PORT", std::to_string(upstream->port)},
      {"PORT", std::to_string(p)},
      {"MAX_CLIENTS", std::to_string(mc)},
  };
  int prepared = kExitError;
  GstElement *pipeline = prepare_pipeline("relay", run, vars, values, &prepared);
  if (!pipeline) return prepared;
  Runner runner(pipeline);
  GstElement *sink = runner.require("sink", "tlsframesink");
  if (!sink) return kExitError;
  ServerOutput output(sink, bind, server_cert_path(tls), static_cast<unsigned>(run.interval));
  ViewerHint hint;
  if (default_dir(tls)) {
    hint.ca_to_copy = tls.dir + "/ca.pem";
  } else {
    hint.options = " --certs " + tls.dir;
  }
  runner.on_playing = [&] { output.announce(hint); };
  runner.on_element_message = [&](const GstStructure *s) {
    if (gst_structure_has_name(s, "tlsframesrc-connected")) {
      output.finish();
      const gchar *addr = gst_structure_get_string(s, "address");
      info(std::string("upstream connected: ") + (addr ? addr : from));
    } else if (gst_structure_has_name(s, "tlsframesrc-disconnected")) {
      output.finish();
      const gchar *reason = gst_structure_get_string(s, "reason");
      info(std::string("upstream lost, reconnecting: ") + (reason ? reason : "?"));
    }
  };
  runner.hint_for_error = [](GstMessage *msg) { return client_error_hint(msg); };
  runner.on_eos = [&] {
    output.finish();
    info("end of stream from upstream, passed on to every client");
  };
  info("relaying " + from + " (upstream) to port " + std::to_string(p));
  int status = runner.run();
  output.finish();
  return status;
}

}  // namespace tlsframe::tool
