// serve's first run: a development CA and a server certificate for this machine,
// made in the per-user certificate directory when it holds none yet.
#pragma once

#include <string>
#include <vector>

#include "tls_files.h"

namespace tlsframe::tool {

// With the default --certs (the per-user directory) and no --cert/--key: when the directory
// holds none of ca.pem, ca.key, server.pem and server.key, makes them (the CA and a server
// certificate for this machine's names and addresses, as `tlsframe certs` does) and says
// where. A set with server.pem and server.key is used as it is; any other partial set is an
// error and nothing is overwritten. Returns false after one error line. *fresh tells whether
// the set was made now; with dry_run (--print-pipeline) nothing is written and *fresh tells
// whether it would be.
bool ensure_server_certs(const TlsOptions &o, bool dry_run, bool *fresh);

// This machine's names and addresses for a server certificate: its host name, localhost,
// the addresses of its up interfaces (IPv4 and IPv6, link-local left out), 127.0.0.1, ::1.
std::vector<std::string> this_machine_names();

}  // namespace tlsframe::tool
