#include "tls_files.h"

#include <glib.h>

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
  opts.value("certs", &dir, "DIR");
  opts.value("ca", &ca, "FILE");
  if (server_side) {
    opts.value("cert", &cert, "FILE");
    opts.value("key", &key, "FILE");
    opts.flag("mtls", &mtls);
  }
  if (client_side) opts.value("client", &client, "NAME");
}

std::string server_cert_path(const TlsOptions &o) {
  return o.cert.empty() ? o.dir + "/server.pem" : o.cert;
}

std::string sink_tls_props(const TlsOptions &o, bool check_files) {
  std::string cert = server_cert_path(o);
  std::string key = o.key.empty() ? o.dir + "/server.key" : o.key;
  if (check_files &&
      (!check_file(cert, "server certificate") || !check_file(key, "server key"))) {
    return "";
  }
  std::string props = "cert-file=" + quote(cert) + " key-file=" + quote(key);
  if (o.mtls) {
    std::string ca = o.ca.empty() ? o.dir + "/ca.pem" : o.ca;
    if (check_files && !check_file(ca, "CA certificate for client certificates")) return "";
    props += " ca-file=" + quote(ca) + " require-client-cert=true";
  }
  return props;
}

std::string src_tls_props(const TlsOptions &o, bool *ok) {
  *ok = false;
  std::string props;
  std::string ca = o.ca.empty() ? o.dir + "/ca.pem" : o.ca;
  if (!o.ca.empty() && !check_file(ca, "CA certificate")) return "";
  if (file_readable(ca)) props = "ca-file=" + quote(ca);  // else: the system's CA store
  if (!o.client.empty()) {
    std::string cert = o.dir + "/client-" + o.client + ".pem";
    std::string key = o.dir + "/client-" + o.client + ".key";
    if (!check_file(cert, "client certificate") || !check_file(key, "client key")) return "";
    props += " cert-file=" + quote(cert) + " key-file=" + quote(key);
  }
  *ok = true;
  return props;
}

}  // namespace tlsframe::tool
