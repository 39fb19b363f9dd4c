#include "addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>

namespace tlsframe::tool {

std::vector<std::string> usable_addresses(const std::string &bind) {
  bool any4 = bind == "0.0.0.0" || bind.empty();
  bool any6 = bind == "::";
  if (!any4 && !any6) {
    return {bind.find(':') != std::string::npos ? "[" + bind + "]" : bind};
  }
  std::vector<std::string> loopback, others;
  ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0) return {any6 ? "[::1]" : "127.0.0.1"};
  for (ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
    if (!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP)) continue;
    char text[INET6_ADDRSTRLEN] = {};
    std::string addr;
    if (ifa->ifa_addr->sa_family == AF_INET) {
      auto *sin = reinterpret_cast<sockaddr_in *>(ifa->ifa_addr);
      inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
      addr = text;
    } else if (ifa->ifa_addr->sa_family == AF_INET6 && any6) {
      auto *sin6 = reinterpret_cast<sockaddr_in6 *>(ifa->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)) continue;  // needs a %zone to be dialled
      inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
      addr = "[" + std::string(text) + "]";
    } else {
      continue;
    }
    auto &bucket = (ifa->ifa_flags & IFF_LOOPBACK) ? loopback : others;
    if (std::find(bucket.begin(), bucket.end(), addr) == bucket.end()) bucket.push_back(addr);
  }
  freeifaddrs(list);
  loopback.insert(loopback.end(), others.begin(), others.end());
  return loopback;
}

}  // namespace tlsframe::tool
