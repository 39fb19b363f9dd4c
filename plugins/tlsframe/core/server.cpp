// The fan-out server: ties the parts together and keeps the public Server
// API. Listener accepts and admits; each connection is a Session (strand,
// socket, TLS record layer, ClientQueue); the Stream fans published messages
// out to its subscribers. This file holds the registry of sessions and the
// I/O threads, and is the SessionHost every session reports to.
#include "core/server.h"

#include <algorithm>
#include <asio.hpp>
#include <cinttypes>
#include <condition_variable>
#include <map>
#include <thread>

#include "core/guarded.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/session.h"
#include "core/stream.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;

}  // namespace

const char *remove_reason_name(RemoveReason r) {
  switch (r) {
    case RemoveReason::kClosed:
      return "closed";
    case RemoveReason::kError:
      return "error";
    case RemoveReason::kTimeout:
      return "timeout";
    case RemoveReason::kProtocol:
      return "protocol-violation";
    case RemoveReason::kServerStopped:
      return "server-stopped";
    case RemoveReason::kEos:
      return "eos";
  }
  return "unknown";
}

struct Server::Impl final : SessionHost {
  ServerConfig config;
  ServerCallbacks callbacks;
  SessionConfig session_config;

  // Declared before everything holding sockets or handlers so it is destroyed last.
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  ServerCounters counters;
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Stream> stream;  // v1: the one, default stream
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;

  struct Registry {
    std::map<uint64_t, std::shared_ptr<Session>> sessions;  // accepted, not yet closed
    uint64_t next_id = 1;
    bool stopping = false;
    bool flush_aborted = false;
    unsigned running_threads = 0;  // I/O threads still in io.run()
  };
  Guarded<Registry> registry;
  // Signalled when a session leaves the registry, an I/O thread ends, or a flush is aborted.
  std::condition_variable registry_changed;

  void on_accepted(asio::ip::tcp::socket socket, std::string address, std::string source);
  std::vector<std::shared_ptr<Session>> all_sessions() const;

  // SessionHost (on the session's strand):
  bool admit(Session &s) override { return listener->admit(s.source()); }
  void on_ready(const std::shared_ptr<Session> &s) override;
  void on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                 const std::string &error) override;
  void request_keyframe(uint64_t session_id) override { stream->request_keyframe(session_id); }
  void on_handshake_failed(const Session &s, const Error &e) override {
    if (callbacks.handshake_failed) callbacks.handshake_failed(s.info().address, e);
  }
};

void Server::Impl::on_accepted(asio::ip::tcp::socket socket, std::string address,
                               std::string source) {
  std::shared_ptr<Session> s;
  {
    auto reg = registry.lock();
    if (reg->stopping) {
      listener->end_handshake(source);
      return;
    }
    const uint64_t id = reg->next_id++;
    s = std::make_shared<Session>(this, session_config, &counters, std::move(socket), id,
                                  std::move(address), std::move(source), listener->context());
    reg->sessions.emplace(id, s);
  }
  TF_DEBUG(kComp, "client %" PRIu64 " %s: connection accepted", s->info().id,
           s->info().address.c_str());
  asio::dispatch(s->executor(), [s] { s->start(); });
}

std::vector<std::shared_ptr<Session>> Server::Impl::all_sessions() const {
  std::vector<std::shared_ptr<Session>> all;
  auto reg = registry.lock();
  for (auto &kv : reg->sessions) all.push_back(kv.second);
  return all;
}

void Server::Impl::on_ready(const std::shared_ptr<Session> &s) {
  // Subscribed first: whatever is published from here on reaches the session.
  const Stream::Joined joined = stream->subscribe(s);
  {
    auto reg = registry.lock();  // with the registry, for publish_eos_and_flush's wait
    counters.clients++;
    counters.clients_total++;
  }
  TF_INFO(kComp, "client %" PRIu64 " %s: connected%s%s", s->info().id, s->info().address.c_str(),
          s->info().subject.empty() ? "" : " as ", s->info().subject.c_str());
  if (callbacks.client_added) callbacks.client_added(s->info());
  if (joined.caps) s->deliver(joined.caps);
  if (joined.at_eos) {
    auto eos_msg = std::make_shared<Message>();
    eos_msg->type = wire::MessageType::kEos;
    eos_msg->bytes = wire::encode_eos();
    s->deliver(eos_msg);
  } else if (joined.has_delta) {
    s->keyframe_asked();
    stream->request_keyframe(s->info().id);
  }
}

void Server::Impl::on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                             const std::string &error) {
  const bool was_admitted = is_admitted(was);  // reported as added, so reported as removed
  {
    auto reg = registry.lock();
    if (reg->sessions.erase(s->info().id) == 0) return;
    if (was_admitted) counters.clients--;
  }
  if (holds_handshake_slot(was)) listener->end_handshake(s->source());
  if (was_admitted) {
    listener->release_client();
    stream->unsubscribe(s->info().id);
  }
  registry_changed.notify_all();
  if (was_admitted) {
    TF_INFO(kComp, "client %" PRIu64 " %s: removed (%s%s%s)", s->info().id,
            s->info().address.c_str(), remove_reason_name(reason), error.empty() ? "" : ": ",
            error.c_str());
    if (callbacks.client_removed) callbacks.client_removed(s->info(), reason, error);
  }
}

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw (join/lock failures are not recoverable here)
  }
}

Result<std::unique_ptr<Server>> Server::start(const ServerConfig &config,
                                              ServerCallbacks callbacks) {
  auto ctx = tls::make_server_context(config.tls);
  if (!ctx) return ctx.error();
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->config.queue_max_buffers = std::max<uint32_t>(1, config.queue_max_buffers);
  impl->config.queue_max_bytes = std::max<uint64_t>(1, config.queue_max_bytes);
  impl->config.io_threads = std::max(1u, config.io_threads);
  impl->config.max_handshakes = effective_max_handshakes(config.max_handshakes);
  impl->callbacks = std::move(callbacks);
  const ServerConfig &cfg = impl->config;

  impl->session_config.handshake_timeout = cfg.handshake_timeout;
  impl->session_config.hello_timeout = cfg.hello_timeout;
  impl->session_config.client_timeout = cfg.client_timeout;
  impl->session_config.queue = QueueLimits{cfg.queue_max_buffers, cfg.queue_max_bytes};
  impl->session_config.max_clients = cfg.max_clients;

  ListenerConfig lc;
  lc.host = cfg.host;
  lc.port = cfg.port;
  lc.backlog = cfg.listen_backlog;
  lc.send_buffer_size = cfg.send_buffer_size;
  lc.max_handshakes = cfg.max_handshakes;
  lc.max_handshakes_per_address = cfg.max_handshakes_per_address;
  lc.max_clients = cfg.max_clients;
  impl->listener = std::make_unique<Listener>(impl->io, lc, ctx.value(), &impl->counters);
  impl->stream = std::make_unique<Stream>(impl->io, cfg.keyframe_request_interval,
                                          impl->callbacks.keyframe_wanted);
  auto port = impl->listener->listen();
  if (!port) return port.error();
  impl->bound_port = port.value();

  impl->work.emplace(impl->io.get_executor());
  Impl *p = impl.get();
  impl->listener->start([p](asio::ip::tcp::socket socket, std::string address, std::string source) {
    p->on_accepted(std::move(socket), std::move(address), std::move(source));
  });
  for (unsigned i = 0; i < cfg.io_threads; ++i) {
    impl->registry.lock()->running_threads++;
    impl->threads.emplace_back([p] {
      p->io.run();
      p->registry.lock()->running_threads--;
      p->registry_changed.notify_all();
    });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const {
  return impl_->bound_port;
}

size_t Server::max_handshakes() const {
  return impl_->config.max_handshakes;
}

void Server::publish_caps(const std::string &caps) {
  impl_->stream->publish_caps(caps);
}

void Server::publish_buffer(const wire::BufferMeta &meta, const uint8_t *data, size_t size,
                            std::shared_ptr<const void> owner) {
  impl_->counters.buffers_published++;
  impl_->stream->publish_buffer(meta, data, size, std::move(owner));
}

bool Server::publish_eos_and_flush(std::chrono::milliseconds timeout) {
  impl_->stream->publish_eos();
  Impl *impl = impl_.get();
  bool flushed = false;
  {
    auto reg = impl->registry.lock();
    flushed = reg.wait_for(impl->registry_changed, timeout, [impl](const Impl::Registry &r) {
      return impl->counters.clients.load() == 0 || r.flush_aborted;
    }) && !reg->flush_aborted;
  }
  TF_INFO(kComp, "EOS %s", flushed ? "delivered to every client" : "flush timed out");
  return flushed;
}

void Server::abort_flush() {
  impl_->registry.lock()->flush_aborted = true;
  impl_->registry_changed.notify_all();
}

void Server::clear_abort_flush() {
  impl_->registry.lock()->flush_aborted = false;
}

void Server::stop() {
  if (!impl_) return;
  Impl *impl = impl_.get();
  std::vector<std::shared_ptr<Session>> all;
  {
    auto reg = impl->registry.lock();
    if (reg->stopping) return;
    reg->stopping = true;
    for (auto &kv : reg->sessions) all.push_back(kv.second);
  }
  impl->listener->close();
  impl->stream->stop();
  for (auto &s : all) {
    asio::post(s->executor(), [s] { s->shutdown(); });
  }
  all.clear();
  {
    auto reg = impl->registry.lock();
    // Grace period for the goodbye; short, so a stalled client delays stop() little.
    reg.wait_for(impl->registry_changed, std::chrono::milliseconds(500),
                 [](const Impl::Registry &r) { return r.sessions.empty(); });
    for (auto &kv : reg->sessions) all.push_back(kv.second);
  }
  // Whoever did not take its goodbye in time is closed now.
  for (auto &s : all) {
    asio::post(s->executor(), [s] { s->close(RemoveReason::kServerStopped, ""); });
  }
  all.clear();
  impl->work.reset();
  {
    // Let in-flight handlers finish for a bounded time, then stop the loop regardless.
    auto reg = impl->registry.lock();
    reg.wait_for(impl->registry_changed, std::chrono::seconds(2),
                 [](const Impl::Registry &r) { return r.running_threads == 0; });
  }
  impl->io.stop();
  for (auto &t : impl->threads) t.join();
  impl->threads.clear();
  impl->stream->unsubscribe_all();
  std::map<uint64_t, std::shared_ptr<Session>> gone;
  gone.swap(impl->registry.lock()->sessions);  // destroyed outside the lock
  TF_INFO(kComp, "stopped");
}

Status Server::reload_tls(const tls::ServerTlsConfig &tls) {
  auto ctx = tls::make_server_context(tls);  // outside the lock: it reads files
  if (!ctx) return ctx.error();
  impl_->listener->set_context(ctx.value());
  TF_INFO(kComp, "TLS context reloaded (certificate %s)", tls.cert_file.c_str());
  return Status::Ok();
}

size_t Server::num_clients() const {
  return impl_->counters.clients.load();
}

ServerStats Server::stats() const {
  const ServerCounters &c = impl_->counters;
  ServerStats s;
  s.clients = c.clients.load();
  s.clients_total = c.clients_total.load();
  s.handshake_failures = c.handshake_failures.load();
  s.refused = c.refused.load();
  s.buffers_published = c.buffers_published.load();
  s.bytes_sent = c.bytes_sent.load();
  s.frames_dropped = c.frames_dropped.load();
  return s;
}

std::vector<ClientStats> Server::client_stats() const {
  std::vector<ClientStats> out;
  for (auto &s : impl_->all_sessions()) {
    if (s->added()) out.push_back(s->stats());
  }
  return out;
}

std::optional<ClientStats> Server::client_stats(uint64_t id) const {
  std::shared_ptr<Session> s;
  {
    auto reg = impl_->registry.lock();
    auto it = reg->sessions.find(id);
    if (it == reg->sessions.end()) return std::nullopt;
    s = it->second;
  }
  if (!s->added()) return std::nullopt;
  return s->stats();
}

}  // namespace tlsframe
