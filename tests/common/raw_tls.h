// A bare OpenSSL TLS client over a POSIX socket, for tests that need a peer
// the elements would never be: one that never reads, or an old TLS version.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tlsframe::test {

// Connected TCP socket to 127.0.0.1:port (-1 on failure). rcvbuf > 0 sets SO_RCVBUF first.
int connect_tcp(int port, int rcvbuf = 0);

// True when the peer closed fd (EOF or reset) before the deadline; data read meanwhile is
// discarded.
bool closed_by_peer(int fd, std::chrono::steady_clock::time_point deadline);

// How a RawTlsClient connects.
struct RawTlsOptions {
  std::string ca_file;      // trust for the server; "" = no verification (a test peer only)
  std::string verify_name;  // name (also sent as SNI) or IP address the certificate must
                            // match; "" = none
  int max_version = 0;      // e.g. TLS1_2_VERSION (0 = library default)
  int rcvbuf = 0;           // SO_RCVBUF set before connecting (0 = kernel default)
  // SO_RCVTIMEO/SO_SNDTIMEO on the socket: bounds every blocking call (0 = none).
  std::chrono::milliseconds io_timeout{0};
  SSL_CTX *shared_ctx = nullptr;  // a context to use (not owned) instead of one made from the above
};

// The one raw OpenSSL TLS client of the tests: a peer the elements and the
// Receiver would never be (one that never reads, writes to the server, is
// limited to TLS 1.2, or resets the connection). Blocking, bounded by
// options.io_timeout.
class RawTlsClient {
 public:
  RawTlsClient() = default;
  ~RawTlsClient();
  RawTlsClient(const RawTlsClient &) = delete;
  RawTlsClient &operator=(const RawTlsClient &) = delete;

  // Connects to 127.0.0.1:port and handshakes. On failure error() has the
  // OpenSSL error queue and the verification result.
  bool connect(int port, const RawTlsOptions &options);
  // Shorthand: ca_file "" = no verification; max_version e.g. TLS1_2_VERSION.
  bool connect(int port, const std::string &ca_file = "", int max_version = 0, int rcvbuf = 0);
  const std::string &error() const { return error_; }  // OpenSSL error text after a failure
  SSL *ssl() const { return ssl_; }
  int fd() const { return fd_; }

  bool write(const std::string &text);  // all of text as application data
  std::string local_address() const;    // "127.0.0.1:port" of our end, as the server names us
  uint16_t local_port() const;
  void close_clean();  // close_notify, then no more writes (the server sees EOF)
  void close_reset();  // the socket is closed with a TCP reset

 private:
  SSL_CTX *ctx_ = nullptr;  // owned unless it is options.shared_ctx
  bool own_ctx_ = false;
  SSL *ssl_ = nullptr;
  int fd_ = -1;
  std::string error_;
};

// Sets SO_RCVTIMEO and SO_SNDTIMEO on fd.
void set_io_timeout(int fd, std::chrono::milliseconds timeout);

// What the raw test servers share: a TLS server context for cert_file/key_file (no
// session tickets) in *ctx, and a socket listening on 127.0.0.1 at a free port in
// *listen_fd and *port. False with *error set on failure, and nothing left open.
bool open_loopback_tls_server(const std::string &cert_file, const std::string &key_file,
                              SSL_CTX **ctx, int *listen_fd, int *port, std::string *error);

// A bare OpenSSL TLS server on 127.0.0.1 (port 0), for tests that need a
// server the sink would never be: one that announces a huge message and
// stalls, or sends timestamps the sink would never produce. Blocking calls,
// each bounded by a deadline; one client at a time. RawV2Server
// (raw_v2_server.h) adds the version 2 client messages on top.
class RawTlsServer {
 public:
  RawTlsServer(const std::string &cert_file, const std::string &key_file);
  virtual ~RawTlsServer();
  RawTlsServer(const RawTlsServer &) = delete;
  RawTlsServer &operator=(const RawTlsServer &) = delete;

  bool ok() const { return listen_fd_ >= 0 && ctx_ != nullptr; }
  int port() const { return port_; }
  // Accepts one client and completes the TLS handshake before the deadline
  // (closing the previous client, if any).
  bool accept(std::chrono::steady_clock::time_point deadline);
  // Writes all of data as TLS application data to the accepted client.
  bool send(const void *data, size_t size);
  bool send(const std::vector<uint8_t> &data) { return send(data.data(), data.size()); }
  // True once the client closed the connection before the deadline.
  bool wait_client_closed(std::chrono::steady_clock::time_point deadline);
  void close_client();
  const std::string &error() const { return error_; }

 protected:
  SSL_CTX *ctx_ = nullptr;  // server context (no session tickets)
  SSL *ssl_ = nullptr;      // the accepted client's connection (nullptr: none)
  int listen_fd_ = -1;
  int fd_ = -1;  // the accepted client's socket
  int port_ = 0;
  std::string error_;  // what the last failure was
};

}  // namespace tlsframe::test
