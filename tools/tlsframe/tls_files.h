// Certificate options shared by serve, view and relay: --certs DIR (the
// layout `tlsframe certs` writes) with --cert/--key/--ca overrides.
#pragma once

#include <string>

#include "cli.h"
#include "values.h"

namespace tlsframe::tool {

// The per-user certificate directory, the default --certs of every command:
// ${XDG_CONFIG_HOME:-$HOME/.config}/tlsframe/certs. serve makes a set there on its first run.
std::string default_cert_dir();

struct TlsOptions {
  std::string dir = default_cert_dir();  // --certs
  std::string cert, key, ca;             // --cert, --key, --ca (override dir)
  std::string client;                    // --client NAME: DIR/client-NAME.pem/.key (view, relay)
  bool mtls = false;                     // --mtls (serve, relay): require client certificates
  std::string fingerprint;  // --fingerprint FP (view, relay): pinned server certificate
  void declare(Options &opts, bool server_side, bool client_side);
};

// True when --certs was not given (dir is the per-user directory).
bool default_dir(const TlsOptions &o);

// Server side (serve, relay): certificate and key required, CA when mutual TLS.
// Adds the tlsframesink (named `element`) properties to *out; false after one error line.
// check_files = false skips the existence checks (files serve is about to make).
bool sink_tls_values(const TlsOptions &o, const std::string &element, PropertyValues *out,
                     bool check_files = true);
// Client side (view, relay upstream): CA (DIR/ca.pem if present, else the
// system store) and the optional client certificate, as properties of the tlsframesrc
// named `element`. With --fingerprint the pin is the trust: only an explicit --ca
// is added (then both must hold), DIR/ca.pem is not. False after one error line.
bool src_tls_values(const TlsOptions &o, const std::string &element, PropertyValues *out);
// The server certificate file serve would use (for its fingerprint).
std::string server_cert_path(const TlsOptions &o);

}  // namespace tlsframe::tool
