// The addresses clients can use to reach a server bound to `bind`.
#pragma once

#include <string>
#include <vector>

namespace tlsframe::tool {

// For a wildcard bind ("0.0.0.0": every IPv4 interface; "::": every
// interface) the up interfaces' addresses, loopback first; otherwise just
// `bind`. IPv6 addresses come bracketed ("[::1]"), link-local ones left out.
std::vector<std::string> usable_addresses(const std::string &bind);

}  // namespace tlsframe::tool
