// Certificate options shared by serve, view and relay: --certs DIR (the
// layout `tlsframe certs` writes) with --cert/--key/--ca overrides.
#pragma once

#include <string>

#include "cli.h"

namespace tlsframe::tool {

// The per-user certificate directory, the default --certs of every command:
// ${XDG_CONFIG_HOME:-$HOME/.config}/tlsframe/certs. serve makes a set there on its first run.
std::string default_cert_dir();

struct TlsOptions {
  std::string dir = default_cert_dir();  // --certs
  std::string cert, key, ca;          // --cert, --key, --ca (override dir)
  std::string client;                 // --client NAME: DIR/client-NAME.pem/.key (view, relay)
  bool mtls = false;                  // --mtls (serve, relay): require client certificates
  void declare(Options &opts, bool server_side, bool client_side);
};

// True when --certs was not given (dir is the per-user directory).
bool default_dir(const TlsOptions &o);

// Server side (serve, relay): certificate and key required, CA when mutual
// TLS. Returns the tlsframesink properties, or "" after one error line.
// check_files = false skips the existence checks (files serve is about to make).
std::string sink_tls_props(const TlsOptions &o, bool check_files = true);
// Client side (view, relay upstream): CA (DIR/ca.pem if present, else the
// system store) and the optional client certificate. "" means an error was
// printed; ok is set to false then.
std::string src_tls_props(const TlsOptions &o, bool *ok);
// The server certificate file serve would use (for its fingerprint).
std::string server_cert_path(const TlsOptions &o);

}  // namespace tlsframe::tool
