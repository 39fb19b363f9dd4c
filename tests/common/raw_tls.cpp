#include "common/raw_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tlsframe::test {

int connect_tcp(int port, int rcvbuf) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool closed_by_peer(int fd, std::chrono::steady_clock::time_point deadline) {
  char buf[512];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
  }
}

namespace {

std::string openssl_errors() {
  std::string out;
  char buf[256];
  while (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, buf, sizeof buf);
    out += std::string(buf) + "; ";
  }
  return out;
}

int ms_left(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

void set_io_timeout(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

RawTlsClient::~RawTlsClient() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_ && own_ctx_) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

bool RawTlsClient::connect(int port, const std::string &ca_file, int max_version, int rcvbuf) {
  RawTlsOptions o;
  o.ca_file = ca_file;
  o.max_version = max_version;
  o.rcvbuf = rcvbuf;
  return connect(port, o);
}

bool RawTlsClient::connect(int port, const RawTlsOptions &options) {
  ERR_clear_error();
  if (options.shared_ctx) {
    ctx_ = options.shared_ctx;
  } else {
    ctx_ = SSL_CTX_new(TLS_client_method());
    own_ctx_ = true;
    if (!ctx_) {
      error_ = "SSL_CTX_new: " + openssl_errors();
      return false;
    }
    if (options.max_version) {
      SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
      SSL_CTX_set_max_proto_version(ctx_, options.max_version);
    }
    if (!options.ca_file.empty()) {
      SSL_CTX_load_verify_locations(ctx_, options.ca_file.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
  }
  fd_ = connect_tcp(port, options.rcvbuf);
  if (fd_ < 0) {
    error_ = std::string("connect failed: ") + std::strerror(errno);
    return false;
  }
  if (options.io_timeout.count() > 0) set_io_timeout(fd_, options.io_timeout);
  ssl_ = SSL_new(ctx_);
  if (!ssl_) {
    error_ = "SSL_new: " + openssl_errors();
    return false;
  }
  SSL_set_fd(ssl_, fd_);
  if (!options.verify_name.empty()) {
    in6_addr ip6{};
    in_addr ip4{};
    const bool is_ip = ::inet_pton(AF_INET, options.verify_name.c_str(), &ip4) == 1 ||
                       ::inet_pton(AF_INET6, options.verify_name.c_str(), &ip6) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), options.verify_name.c_str());
    } else {
      SSL_set1_host(ssl_, options.verify_name.c_str());
      SSL_set_tlsext_host_name(ssl_, options.verify_name.c_str());
    }
  }
  if (SSL_connect(ssl_) != 1) {
    error_ = openssl_errors();
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      error_ += std::string("verify result: ") + X509_verify_cert_error_string(verify);
    }
    return false;
  }
  ERR_clear_error();
  return true;
}

bool RawTlsClient::write(const std::string &text) {
  size_t written = 0;
  return ssl_ && SSL_write_ex(ssl_, text.data(), text.size(), &written) == 1 &&
         written == text.size();
}

std::string RawTlsClient::local_address() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) return "?";
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

uint16_t RawTlsClient::local_port() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

void RawTlsClient::close_clean() {
  if (ssl_) SSL_shutdown(ssl_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void RawTlsClient::close_reset() {
  if (fd_ < 0) return;
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd_);
  fd_ = -1;
}

bool open_loopback_tls_server(const std::string &cert_file, const std::string &key_file,
                              SSL_CTX **ctx, int *listen_fd, int *port, std::string *error) {
  ERR_clear_error();
  *ctx = SSL_CTX_new(TLS_server_method());
  if (!*ctx || SSL_CTX_use_certificate_chain_file(*ctx, cert_file.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(*ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    *error = "TLS context: " + openssl_errors();
    if (*ctx) SSL_CTX_free(*ctx);
    *ctx = nullptr;
    return false;
  }
  SSL_CTX_set_num_tickets(*ctx, 0);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 8) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
    *error = "listen failed";
    if (fd >= 0) ::close(fd);
    SSL_CTX_free(*ctx);
    *ctx = nullptr;
    return false;
  }
  *listen_fd = fd;
  *port = ntohs(addr.sin_port);
  return true;
}

RawTlsServer::RawTlsServer(const std::string &cert_file, const std::string &key_file) {
  open_loopback_tls_server(cert_file, key_file, &ctx_, &listen_fd_, &port_, &error_);
}

RawTlsServer::~RawTlsServer() {
  close_client();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (ctx_) SSL_CTX_free(ctx_);
}

void RawTlsServer::close_client() {
  if (ssl_) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawTlsServer::accept(std::chrono::steady_clock::time_point deadline) {
  close_client();
  pollfd pfd{listen_fd_, POLLIN, 0};
  if (!ok() || ::poll(&pfd, 1, ms_left(deadline)) != 1) {
    error_ = "no client connected in time";
    return false;
  }
  fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd_ < 0) {
    error_ = "accept failed";
    return false;
  }
  // Every blocking read/write below is bounded by the time left.
  set_io_timeout(fd_, std::chrono::milliseconds(std::max(1, ms_left(deadline))));
  ERR_clear_error();
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  if (SSL_accept(ssl_) != 1) {
    error_ = "TLS handshake failed: " + openssl_errors();
    return false;
  }
  return true;
}

bool RawTlsServer::send(const void *data, size_t size) {
  if (!ssl_) return false;
  size_t written = 0;
  ERR_clear_error();
  if (size != 0 && SSL_write_ex(ssl_, data, size, &written) != 1) {
    error_ = "TLS write failed: " + openssl_errors();
    return false;
  }
  return true;
}

bool RawTlsServer::wait_client_closed(std::chrono::steady_clock::time_point deadline) {
  return fd_ >= 0 && closed_by_peer(fd_, deadline);
}

}  // namespace tlsframe::test
