#include "tls_files.h"

#include <glib.h>

#include "core/tls_context.h"

namespace tlsframe::tool {

namespace {

bool check_file(const std::string &path, const std::string &what) {
  if (file_readable(path)) return true;
  error(what + " '" + path +
        "' not found or not readable (make certificates with: tlsframe certs "
        "--out DIR --host NAME; then pass --certs DIR)");
  return false;
}

}  // namespace

std::string default_cert_dir() {
  // GLib: $XDG_CONFIG_HOME when set, else $HOME/.config (the XDG base directory rule).
  return std::string(g_get_user_config_dir()) + "/tlsframe/certs";
}

bool default_dir(const TlsOptions &o) {
  return o.dir == default_cert_dir();
}

void TlsOptions::declare(Options &opts, bool server_side, bool client_side) {
  opts.value("certs", &dir, "DIR",
             "Certificate directory (default: the per-user directory "
             "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs)");
  if (server_side && client_side) {
    opts.value("ca", &ca, "FILE", "CA file for the upstream server (instead of DIR/ca.pem)");
  } else if (server_side) {
    opts.value("ca", &ca, "FILE", "CA file for client certificates (instead of DIR/ca.pem)");
  } else {
    opts.value("ca", &ca, "FILE", "Trust this CA file (instead of DIR/ca.pem)");
  }
  if (server_side) {
    opts.value("cert", &cert, "FILE", "Server certificate (instead of DIR/server.pem)");
    opts.value("key", &key, "FILE", "Server key (instead of DIR/server.key)");
    opts.flag("mtls", &mtls,
              "Mutual TLS: only clients with a certificate signed by the CA (DIR/ca.pem)");
  }
  if (client_side) {
    opts.value("client", &client, "NAME",
               "Present DIR/client-NAME.pem and .key (servers with --mtls)");
    opts.value("fingerprint", &fingerprint, "FP",
               "Trust the server by its certificate's SHA-256 fingerprint, as serve prints it "
               "(no CA file needed; with --ca both must hold)");
  }
}

std::string server_cert_path(const TlsOptions &o) {
  return o.cert.empty() ? o.dir + "/server.pem" : o.cert;
}

bool sink_tls_values(const TlsOptions &o, const std::string &element, PropertyValues *out,
                     bool check_files) {
  std::string cert = server_cert_path(o);
  std::string key = o.key.empty() ? o.dir + "/server.key" : o.key;
  if (check_files && (!check_file(cert, "server certificate") || !check_file(key, "server key"))) {
    return false;
  }
  out->push_back({element, "cert-file", cert});
  out->push_back({element, "key-file", key});
  if (o.mtls) {
    std::string ca = o.ca.empty() ? o.dir + "/ca.pem" : o.ca;
    if (check_files && !check_file(ca, "CA certificate for client certificates")) return false;
    out->push_back({element, "ca-file", ca});
    out->push_back({element, "require-client-cert", "true"});
  }
  return true;
}

bool src_tls_values(const TlsOptions &o, const std::string &element, PropertyValues *out) {
  std::string ca = o.ca.empty() ? o.dir + "/ca.pem" : o.ca;
  if (!o.ca.empty() && !check_file(ca, "CA certificate")) return false;
  if (!o.fingerprint.empty()) {
    auto pin = tls::normalize_fingerprint(o.fingerprint);
    if (!pin) {
      error(pin.error().message);
      return false;
    }
    out->push_back({element, "server-fingerprint", *pin});
  }
  if (!o.fingerprint.empty() && o.ca.empty()) {
    info("trusting the server by its certificate fingerprint (no CA file, name not checked)");
  } else if (file_readable(ca)) {
    out->push_back({element, "ca-file", ca});
  } else {
    // Not silent: a viewer that expected DIR/ca.pem learns why a private CA is not trusted.
    info(ca + " not found: the server is verified against the system's CA certificates");
  }
  if (!o.client.empty()) {
    std::string cert = o.dir + "/client-" + o.client + ".pem";
    std::string key = o.dir + "/client-" + o.client + ".key";
    if (!check_file(cert, "client certificate") || !check_file(key, "client key")) return false;
    out->push_back({element, "cert-file", cert});
    out->push_back({element, "key-file", key});
  }
  return true;
}

}  // namespace tlsframe::tool
