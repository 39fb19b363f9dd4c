// A bare OpenSSL TLS client over a POSIX socket, for tests that need a peer
// the elements would never be: one that never reads, or an old TLS version.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <string>

namespace tlsframe::test {

// Connected TCP socket to 127.0.0.1:port (-1 on failure). rcvbuf > 0 sets SO_RCVBUF first.
int connect_tcp(int port, int rcvbuf = 0);

// True when the peer closed fd (EOF or reset) before the deadline; data read meanwhile is
// discarded.
bool closed_by_peer(int fd, std::chrono::steady_clock::time_point deadline);

class RawTlsClient {
 public:
  RawTlsClient() = default;
  ~RawTlsClient();
  RawTlsClient(const RawTlsClient &) = delete;
  RawTlsClient &operator=(const RawTlsClient &) = delete;

  // Connects and handshakes. max_version e.g. TLS1_2_VERSION (0 = library default).
  // ca_file "" = no server verification (a test peer, not a product client).
  bool connect(int port, const std::string &ca_file = "", int max_version = 0, int rcvbuf = 0);
  const std::string &error() const { return error_; }  // OpenSSL error text after a failure
  SSL *ssl() const { return ssl_; }
  int fd() const { return fd_; }

 private:
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
  int fd_ = -1;
  std::string error_;
};

}  // namespace tlsframe::test
