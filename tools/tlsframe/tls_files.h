// Certificate options shared by serve, view and relay: --certs DIR (the
// layout `tlsframe certs` writes) with --cert/--key/--ca overrides.
#pragma once

#include <string>

#include "cli.h"

namespace tlsframe::tool {

constexpr const char *kDefaultCertDir = "_certs";

struct TlsOptions {
  std::string dir = kDefaultCertDir;  // --certs
  std::string cert, key, ca;          // --cert, --key, --ca (override dir)
  std::string client;                 // --client NAME: DIR/client-NAME.pem/.key (view, relay)
  bool mtls = false;                  // --mtls (serve, relay): require client certificates
  void declare(Options &opts, bool server_side, bool client_side);
};

// Server side (serve, relay): certificate and key required, CA when mutual
// TLS. Returns the tlsframesink properties, or "" after one error line.
std::string sink_tls_props(const TlsOptions &o);
// Client side (view, relay upstream): CA (DIR/ca.pem if present, else the
// system store) and the optional client certificate. "" means an error was
// printed; ok is set to false then.
std::string src_tls_props(const TlsOptions &o, bool *ok);
// The server certificate file serve would use (for its fingerprint).
std::string server_cert_path(const TlsOptions &o);

}  // namespace tlsframe::tool
