// `tlsframe relay --from HOST:PORT`: tlsframesrc -> queue -> tlsframesink.
// One upstream connection, served again; relays of relays form a tree.
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

constexpr const char *kUsage = R"(usage: tlsframe relay --from HOST[:PORT] [OPTIONS]

Receives one stream from a server (or another relay) and serves it again, untouched.
Reconnects upstream when the connection drops.

  --from HOST[:PORT]  the upstream server ([IPv6]:PORT too; port 9999 by default)
  --port N            port to serve on (default 9999; 0 = any free port, printed at start)
  --bind ADDR         address to listen on (default 0.0.0.0)
  --certs DIR         ca.pem to trust upstream, server.pem/server.key to serve (default:
                      the per-user directory ${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs)
  --ca FILE           CA for the upstream server (instead of DIR/ca.pem)
  --cert FILE --key FILE  certificate to serve with (instead of DIR/server.*)
  --client NAME       present DIR/client-NAME.pem upstream (upstream uses --mtls)
  --server-name N     name the upstream certificate must have (default: its HOST)
  --mtls              require client certificates from our own clients (CA: DIR/ca.pem)
  --max-clients N     most clients at once (default 0 = unlimited)
  --pipeline FILE     use this pipeline template instead of relay.pipeline
  --print-pipeline    print the gst-launch-1.0 pipeline and exit
  --quiet             print errors only
  --status-interval S seconds between status lines when not on a terminal (default 10)
)";

}  // namespace

int cmd_relay(int argc, char **argv) {
  std::string from, port = "9999", bind = "0.0.0.0", server_name, max_clients = "0";
  TlsOptions tls;
  Options opts;
  opts.value("from", &from, "HOST:PORT");
  opts.value("port", &port, "N");
  opts.value("bind", &bind, "ADDR");
  opts.value("server-name", &server_name, "NAME");
  opts.value("max-clients", &max_clients, "N");
  tls.declare(opts, true, true);
  RunOptions run;
  std::vector<std::string> positional;
  int done = run.parse(opts, argc, argv, kUsage, &positional);
  if (done >= 0) return done;
  if (from.empty() && positional.size() == 1) from = positional[0];
  if (from.empty()) {
    error("which upstream server? usage: tlsframe relay --from HOST[:PORT] (see --help)");
    return kExitUsage;
  }
  auto upstream = parse_host_port(from, kDefaultPort);
  if (!upstream) {
    error("cannot read '" + from + "' as HOST[:PORT] or [IPV6]:PORT");
    return kExitUsage;
  }
  long p, mc;
  if (!parse_int("port", port, 0, 65535, &p) ||
      !parse_int("max-clients", max_clients, 0, 1 << 20, &mc)) {
    return kExitUsage;
  }
  if (!init_gstreamer(&argc, &argv)) return kExitError;

  // Upstream trust comes from --ca (or DIR/ca.pem); our own --mtls also uses it.
  bool ok = false;
  std::string src_tls = src_tls_props(tls, &ok);
  if (!ok) return kExitError;
  std::string sink_tls = sink_tls_props(tls);
  if (sink_tls.empty()) return kExitError;

  std::map<std::string, std::string> vars = {
      {"UPSTREAM_HOST", quote(upstream->host)},
      {"UPSTREAM_PORT", std::to_string(upstream->port)},
      {"SERVER_NAME", server_name.empty() ? "" : "server-name=" + quote(server_name)},
      {"SRC_TLS", src_tls},
      {"BIND", quote(bind)},
      {"PORT", std::to_string(p)},
      {"MAX_CLIENTS", std::to_string(mc)},
      {"TLS", sink_tls},
  };
  int prepared = kExitError;
  GstElement *pipeline = prepare_pipeline("relay", run, vars, &prepared);
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
