// The fan-out server's public API: one Stream on a Hub (core/hub.h: the
// listener, the I/O threads and the sessions, shared by the streams on one
// port). Each connection is a Session (strand, socket, TLS record layer,
// ClientQueue); the Stream fans published messages out to its subscribers.
#include "core/server.h"

#include <atomic>
#include <mutex>

#include "core/hub.h"
#include "core/log.h"
#include "core/wire_fields.h"

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
    case RemoveReason::kForbidden:
      return "forbidden";
    case RemoveReason::kRevoked:
      return "revoked";
  }
  return "unknown";
}

const char *sync_method_name(SyncMethod m) {
  switch (m) {
    case SyncMethod::kNextKeyframe:
      return "next-keyframe";
    case SyncMethod::kLatestKeyframe:
      return "latest-keyframe";
  }
  return "unknown";
}

namespace {

// authorized-clients: every rule parses, and a certificate is required to
// match one (else every client without one would simply be refused).
Status check_authorization_settings(const ServerConfig &config) {
  auto rules = authz::parse_rules(config.authorized_clients);
  if (!rules) return rules.error();
  if (!config.authorized_clients.empty() && !config.tls.require_client_cert) {
    return Error{Error::Kind::kSettings,
                 "authorized-clients needs require-client-cert=true (and ca-file): the rules "
                 "match client certificates",
                 ""};
  }
  return Status::Ok();
}

}  // namespace

struct Server::Impl {
  std::shared_ptr<Hub> hub;        // the listener, shared with the other streams on its port
  std::shared_ptr<Stream> stream;  // what this server publishes
  std::atomic<bool> flush_aborted{false};
  std::mutex stop_lock;  // serializes stop()
  bool stopped = false;  // under stop_lock
};

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw (join/lock failures are not recoverable here)
  }
}

Result<std::unique_ptr<Server>> Server::start(const ServerConfig &config,
                                              ServerCallbacks callbacks) {
  if (!config.stream_name.empty() && !wire::valid_stream_name(config.stream_name)) {
    return Error{Error::Kind::kSettings,
                 "stream-name \"" + config.stream_name +
                     "\" is not a valid stream name (1 to 64 of A-Z a-z 0-9 . _ -, not "
                     "starting with '.')",
                 ""};
  }
  if (Status st = check_authorization_settings(config); !st) return st.error();
  auto acquired = Hub::acquire(config, std::move(callbacks));
  if (!acquired) return acquired.error();
  auto impl = std::make_shared<Impl>();
  impl->hub = acquired.value().hub;
  impl->stream = acquired.value().stream;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const {
  return impl_->hub->port();
}

size_t Server::max_handshakes() const {
  return impl_->hub->max_handshakes();
}

void Server::publish_caps(const std::string &caps) {
  impl_->stream->publish_caps(caps);
}

void Server::declare_rate(uint64_t bps) {
  impl_->stream->declare_rate(bps);
}

void Server::publish_buffer(const wire::BufferMeta &meta, const uint8_t *data, size_t size,
                            std::shared_ptr<const void> owner) {
  impl_->stream->publish_buffer(meta, data, size, std::move(owner));
}

bool Server::publish_eos_and_flush(std::chrono::milliseconds timeout) {
  Impl *impl = impl_.get();
  impl->stream->publish_eos();
  StreamCounters &c = impl->stream->counters();
  const bool flushed = impl->hub->wait(timeout, [&] {
    return c.clients.load() == 0 || impl->flush_aborted.load();
  }) && !impl->flush_aborted.load();
  TF_INFO(kComp, "stream \"%s\": EOS %s", impl->stream->name().c_str(),
          flushed ? "delivered to every client" : "flush timed out");
  return flushed;
}

void Server::abort_flush() {
  impl_->flush_aborted = true;
  impl_->hub->notify();
}

void Server::clear_abort_flush() {
  impl_->flush_aborted = false;
}

void Server::stop() {
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(impl_->stop_lock);
  if (impl_->stopped) return;
  impl_->stopped = true;
  Hub::release(impl_->hub, impl_->stream);
  impl_->stream->detach_callbacks();
  TF_INFO(kComp, "stream \"%s\" stopped", impl_->stream->name().c_str());
}

Status Server::reload_tls(const tls::ServerTlsConfig &tls) {
  auto ctx = tls::make_server_context(tls);  // outside the lock: it reads files
  if (!ctx) return ctx.error();
  impl_->hub->set_context(ctx.value(), tls);
  TF_INFO(kComp, "TLS context reloaded (certificate %s)", tls.cert_file.c_str());
  return Status::Ok();
}

size_t Server::num_clients() const {
  return impl_->stream->counters().clients.load();
}

ServerStats Server::stats() const {
  const ServerCounters &h = impl_->hub->counters();
  const StreamCounters &c = impl_->stream->counters();
  ServerStats s;
  s.clients = c.clients.load();
  s.clients_total = c.clients_total.load();
  s.handshake_failures = h.handshake_failures.load();
  s.refused = h.refused.load();
  s.buffers_published = c.buffers_published.load();
  s.bytes_sent = c.bytes_sent.load();
  s.frames_dropped = c.frames_dropped.load();
  return s;
}

std::vector<ClientStats> Server::client_stats() const {
  std::vector<ClientStats> out;
  for (auto &s : impl_->stream->subscribers()) {
    if (s->added()) out.push_back(s->stats());
  }
  return out;
}

std::optional<ClientStats> Server::client_stats(uint64_t id) const {
  for (auto &s : impl_->stream->subscribers()) {
    if (s->info().id == id && s->added()) return s->stats();
  }
  return std::nullopt;
}

}  // namespace tlsframe
