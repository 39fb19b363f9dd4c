// One listening host:port and everything behind it that the streams served
// there share: the asio::io_context and its I/O threads, the Listener
// (accept, admission, TLS context), the registry of sessions, and the
// streams by name. Every Server (one per sink) names a Stream on a Hub;
// Servers started in one process with the same host and fixed port share
// one Hub (acquire()), so N streams on a port cost one listener, one TLS
// setup and io_threads threads in all. The last Server to leave stops it.
//
// Threads: acquire()/release() on the caller's (state-change) thread, under
// a process-wide lock; the SessionHost calls on session strands; the rest
// on any thread.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/guarded.h"
#include "core/listener.h"
#include "core/server.h"
#include "core/session.h"
#include "core/stream.h"

namespace tlsframe {

// The name of the first setting the listener applies in which a and b
// differ, as the element's property is named ("cert-file", "io-threads",
// ...); "" when they agree. Sinks sharing a port must agree on all of them.
std::string listener_setting_mismatch(const ServerConfig &a, const ServerConfig &b);

class Hub final : public SessionHost, public std::enable_shared_from_this<Hub> {
 public:
  // A new stream (config.stream_name, with callbacks) on a Hub serving
  // config's host:port: the one already shared there when the port is fixed
  // and one exists (its listener settings must match config's, and the name
  // must be free there), else a new one (binds and listens, starts the I/O
  // threads). The error names the setting at fault.
  struct Acquired {
    std::shared_ptr<Hub> hub;
    std::shared_ptr<Stream> stream;
  };
  static Result<Acquired> acquire(const ServerConfig &config, ServerCallbacks callbacks);
  // The stream leaves: it takes no new client, its clients get ERROR
  // (shutting down) and are closed (each reported removed before this
  // returns, or within a bounded wait). The last stream to leave stops the hub.
  static void release(const std::shared_ptr<Hub> &hub, const std::shared_ptr<Stream> &stream);

  // Internal: use acquire().
  explicit Hub(const ServerConfig &config);
  ~Hub();

  asio::io_context &io() { return io_; }
  uint16_t port() const { return bound_port_; }
  size_t max_handshakes() const { return max_handshakes_; }  // after clamping
  const ServerConfig &config() const { return config_; }
  ServerCounters &counters() { return counters_; }
  // New handshakes use tls (every stream of this hub).
  void set_context(tls::ContextPtr ctx, const tls::ServerTlsConfig &tls);

  // Waits (bounded) until pred() holds; pred is evaluated with the registry
  // locked, after every change of the registry or notify().
  bool wait(std::chrono::milliseconds timeout, const std::function<bool()> &pred);
  void notify();

  // SessionHost (on the session's strand):
  bool admit(Session &s) override { return listener_->admit(s.source()); }
  std::shared_ptr<Stream> find_stream(const std::string &name,
                                      std::vector<std::string> *names) override;
  std::vector<wire::StreamSummary> list_streams() override;
  void on_ready(const std::shared_ptr<Session> &s) override;
  void on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                 const std::string &error) override;
  void on_handshake_failed(const Session &s, const Error &e) override;
  void on_rendition_switched(const std::shared_ptr<Session> &s, Stream &from, Stream &to,
                             const RenditionChange &change) override;
  tls::ContextPtr current_context() override { return listener_->context(); }
  std::weak_ptr<void> lifetime() override { return weak_from_this(); }

 private:
  // A stream with config's name is served: config may join it as another
  // rendition (distinct names, same authorized_clients), else the error says why.
  static Status check_joins_group(const StreamGroup &group, const ServerConfig &config,
                                  const std::string &where);
  Status start();  // binds, listens, starts the threads
  void stop();     // closes every connection and the listener, joins the threads
  void close_sessions(const std::vector<std::shared_ptr<Session>> &sessions);
  std::vector<std::shared_ptr<Stream>> all_streams();  // every rendition of every stream
  // After a reload with CRLs: every session checks its client certificate
  // against ctx (on its strand); the revoked ones leave.
  void check_revocations(const tls::ContextPtr &ctx);
  void on_accepted(asio::ip::tcp::socket socket, std::string address, std::string source);

  ServerConfig config_;  // as the first stream's server gave it (clamped); TLS files follow reloads
  SessionConfig session_config_;

  // Declared before everything holding sockets or handlers so it is destroyed last.
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  ServerCounters counters_;  // handshake_failures and refused: the listener's
  std::unique_ptr<Listener> listener_;
  std::vector<std::thread> threads_;
  uint16_t bound_port_ = 0;
  size_t max_handshakes_ = 0;  // config_.max_handshakes clamped to the open-file limit

  struct Registry {
    std::map<uint64_t, std::shared_ptr<Session>> sessions;  // accepted, not yet closed
    // Served now, by name: each a group of renditions (one stream without them).
    std::map<std::string, std::shared_ptr<StreamGroup>> streams;
    uint64_t next_id = 1;
    bool stopping = false;
    unsigned running_threads = 0;  // I/O threads still in io.run()
  };
  Guarded<Registry> registry_;
  // Signalled when a session leaves the registry, an I/O thread ends, or on notify().
  std::condition_variable registry_changed_;
};

}  // namespace tlsframe
