// Endpoint formatting shared by the server and the receiver.
#pragma once

#include <asio/ip/tcp.hpp>
#include <string>

namespace tlsframe {

// "1.2.3.4:5" or "[::1]:5"; IPv4-mapped IPv6 addresses print as IPv4.
inline std::string format_endpoint(const asio::ip::tcp::endpoint &ep) {
  const auto addr = ep.address();
  std::string host;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    host = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6()).to_string();
  } else if (addr.is_v6()) {
    host = "[" + addr.to_string() + "]";
  } else {
    host = addr.to_string();
  }
  return host + ":" + std::to_string(ep.port());
}

}  // namespace tlsframe
