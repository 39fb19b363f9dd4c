// The server's front door: binds and listens, accepts connections, and
// admits them. Admission is counted here: handshakes in progress in all (at
// most max_handshakes, clamped below the open-file limit) and per source
// address (an IPv6 /64 counts as one), then clients past their handshake
// within max_clients. Also holds the TLS context new sessions are made from.
//
// Threads: accept handlers run on the accept strand; the admission and
// context calls on any thread (their own lock).
#pragma once

// <cstddef> before <asio.hpp>: asio chooses aligned_alloc/free or operator
// new/delete from libstdc++'s macros, so every file must have them first,
// else two files inline different versions and one frees what the other
// allocated (ASan: alloc-dealloc-mismatch).
#include <cstddef>

#include <asio.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/guarded.h"
#include "core/result.h"
#include "core/tls_context.h"

namespace tlsframe {

struct ServerCounters;

// The "address" a per-address handshake limit counts: the IPv4 address
// (also when mapped into IPv6), or the /64 prefix of an IPv6 address.
std::string source_key(const asio::ip::address &a);
// The configured number, but at most half the open-file soft limit.
size_t effective_max_handshakes(size_t configured);

struct ListenerConfig {
  std::string host;   // address or name to listen on ("" = 0.0.0.0)
  uint16_t port = 0;  // 0 = any free port
  int backlog = 1024;
  int send_buffer_size = 0;               // SO_SNDBUF per connection, 0 = kernel default
  size_t max_handshakes = 1;              // already clamped (effective_max_handshakes)
  size_t max_handshakes_per_address = 0;  // 0 = no per-address limit
  uint32_t max_clients = 0;               // 0 = unlimited
};

class Listener {
 public:
  // A connection that got a handshake slot: the server makes its session.
  using Accepted =
      std::function<void(asio::ip::tcp::socket socket, std::string address, std::string source)>;

  Listener(asio::io_context &io, ListenerConfig config, tls::ContextPtr ctx,
           ServerCounters *counters);

  // Binds and listens; the bound port on success.
  Result<uint16_t> listen();
  void start(Accepted accepted);  // accepts until close()
  void close();                   // posts the acceptor's close to the accept strand

  tls::ContextPtr context() const { return *ctx_.lock(); }
  void set_context(tls::ContextPtr ctx) { *ctx_.lock() = std::move(ctx); }

  // A connection given to Accepted left its handshake (failed, closed, or
  // admit() was called).
  void end_handshake(const std::string &source);
  // The handshake completed: ends it and takes a client slot, or returns
  // false (max-clients reached; counted as refused).
  bool admit(const std::string &source);
  void release_client();  // an admitted client closed

 private:
  void do_accept();
  void on_accept(asio::ip::tcp::socket socket);

  asio::io_context &io_;
  const ListenerConfig config_;
  ServerCounters *counters_;
  Accepted accepted_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::tcp::acceptor acceptor_;  // only used on strand_
  asio::steady_timer retry_;          // accept back-off, on strand_

  struct Admission {
    size_t handshaking = 0;                               // connections in their TLS handshake
    std::map<std::string, size_t> handshaking_by_source;  // the same, by source_key()
    size_t admitted = 0;                                  // past the handshake, within max_clients
  };
  Guarded<Admission> admission_;
  Guarded<tls::ContextPtr> ctx_;  // for new sessions; reload replaces it
};

}  // namespace tlsframe
