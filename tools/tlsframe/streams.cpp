#include "streams.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli.h"

namespace tlsframe::tool {

std::optional<std::vector<StreamSpec>> parse_stream_options(
    const std::vector<std::string> &values) {
  std::vector<StreamSpec> streams;
  for (const auto &v : values) {
    auto eq = v.find('=');
    if (eq == std::string::npos || eq + 1 == v.size()) {
      error("--stream takes NAME=SOURCE (e.g. --stream cam1=test:ball), not '" + v + "'");
      return std::nullopt;
    }
    std::string name = v.substr(0, eq), source = v.substr(eq + 1);
    StreamSpec *found = nullptr;
    for (auto &s : streams) {
      if (s.name == name) found = &s;
    }
    if (!found) {
      streams.push_back({name, {}});
      found = &streams.back();
    }
    found->sources.push_back(source);
  }
  return streams;
}

std::string sink_element(size_t stream) {
  return "sink-" + std::to_string(stream);
}
std::string src_element(size_t stream) {
  return "src-" + std::to_string(stream);
}
std::string selector_element(size_t stream) {
  return "select-" + std::to_string(stream);
}
std::string source_element(size_t stream, size_t index) {
  return "source-" + std::to_string(stream) + "-" + std::to_string(index);
}

std::string stream_address(const std::string &host_port, const std::string &name) {
  return name.empty() ? host_port : host_port + "/" + name;
}

std::string stream_label(const std::string &name) {
  return name.empty() ? "(default)" : name;
}

bool PortReservation::reserve(const std::string &bind) {
  release();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo *res = nullptr;
  int rc = getaddrinfo(bind.empty() ? nullptr : bind.c_str(), "0", &hints, &res);
  if (rc != 0 || !res) {
    error("cannot resolve --bind '" + bind + "': " + gai_strerror(rc));
    return false;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            ::bind(fd, res->ai_addr, res->ai_addrlen) == 0;
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ok = ok && getsockname(fd, reinterpret_cast<sockaddr *>(&local), &len) == 0;
  freeaddrinfo(res);
  if (!ok) {
    error("cannot find a free port on " + bind + ": " + strerror(errno));
    if (fd >= 0) close(fd);
    return false;
  }
  fd_ = fd;
  port_ = local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6 *>(&local)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in *>(&local)->sin_port);
  return true;
}

void PortReservation::release() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace tlsframe::tool
