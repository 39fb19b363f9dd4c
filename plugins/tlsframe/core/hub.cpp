#include "core/hub.h"

#include <algorithm>
#include <cinttypes>

#include "core/log.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;

// Hubs on a fixed port, by "host port": shared by every Server started there.
// The lock is held while a hub starts or stops, so a port is never bound twice.
struct SharedHubs {
  std::map<std::string, std::shared_ptr<Hub>> by_endpoint;
};
Guarded<SharedHubs> &shared_hubs() {
  static Guarded<SharedHubs> hubs;
  return hubs;
}

std::string endpoint_key(const ServerConfig &c) {
  return c.host + " " + std::to_string(c.port);
}

}  // namespace

std::string listener_setting_mismatch(const ServerConfig &a, const ServerConfig &b) {
  if (a.tls.cert_file != b.tls.cert_file) return "cert-file";
  if (a.tls.key_file != b.tls.key_file) return "key-file";
  if (a.tls.ca_file != b.tls.ca_file) return "ca-file";
  if (a.tls.require_client_cert != b.tls.require_client_cert) return "require-client-cert";
  if (a.tls.crl_file != b.tls.crl_file) return "crl-file";
  if (a.tls.min_version != b.tls.min_version) return "min-tls-version";
  if (a.tls.http != b.tls.http) return "browser";
  if (a.handshake_timeout != b.handshake_timeout) return "handshake-timeout";
  if (std::max(1u, a.io_threads) != std::max(1u, b.io_threads)) return "io-threads";
  // Applied before a client names its stream, so one value per listener too:
  if (a.max_clients != b.max_clients) return "max-clients";
  if (a.hello_timeout != b.hello_timeout) return "hello-timeout";
  if (a.client_timeout != b.client_timeout) return "timeout";
  if (a.queue_max_buffers != b.queue_max_buffers) return "buffers-max";
  if (a.queue_max_bytes != b.queue_max_bytes) return "bytes-max";
  if (a.queue_max_time != b.queue_max_time) return "time-max";
  if (a.send_buffer_size != b.send_buffer_size) return "send-buffer-size";
  if (a.max_handshakes != b.max_handshakes) return "max-handshakes";
  if (a.max_handshakes_per_address != b.max_handshakes_per_address) {
    return "max-handshakes-per-address";
  }
  if (a.listen_backlog != b.listen_backlog) return "listen-backlog";
  return "";
}

Status Hub::check_joins_group(const StreamGroup &group, const ServerConfig &config,
                              const std::string &where) {
  const std::shared_ptr<Stream> entry = group.entry();
  if (config.rendition.empty() || !entry || entry->rendition().empty()) {
    return Error{Error::Kind::kSettings,
                 config.stream_name.empty()
                     ? "stream-name: another sink already serves the default stream (no "
                       "stream-name) on " + where
                     : "stream-name \"" + config.stream_name + "\" is already served on " + where +
                           " (sinks sharing a stream need distinct `rendition` names)",
                 ""};
  }
  if (group.find(config.rendition)) {
    return Error{Error::Kind::kSettings,
                 "rendition \"" + config.rendition + "\" of stream \"" + config.stream_name +
                     "\" is already served on " + where,
                 ""};
  }
  if (entry->authorized_clients() != config.authorized_clients) {
    return Error{Error::Kind::kSettings,
                 "rendition \"" + config.rendition + "\" of stream \"" + config.stream_name +
                     "\": authorized-clients differs from the stream's other renditions (they "
                     "must agree)",
                 ""};
  }
  return Status::Ok();
}

Result<Hub::Acquired> Hub::acquire(const ServerConfig &config, ServerCallbacks callbacks) {
  if (!config.rendition.empty() && !wire::valid_rendition_name(config.rendition)) {
    return Error{Error::Kind::kSettings,
                 "rendition \"" + config.rendition +
                     "\" is not a rendition name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with "
                     "'.', and not \"auto\"",
                 ""};
  }
  auto make_stream = [&](Hub &hub) {
    return std::make_shared<Stream>(hub.io_, config, std::move(callbacks));
  };
  const bool shareable = config.port != 0;
  auto hubs = shared_hubs().lock();
  if (shareable) {
    auto it = hubs->by_endpoint.find(endpoint_key(config));
    if (it != hubs->by_endpoint.end()) {
      std::shared_ptr<Hub> hub = it->second;
      const std::string where = config.host + ":" + std::to_string(config.port);
      const std::string differs = listener_setting_mismatch(hub->config_, config);
      if (!differs.empty()) {
        return Error{Error::Kind::kSettings,
                     "cannot share " + where + " with the stream already served there: " +
                         differs + " differs (sinks on one port must agree on it)",
                     ""};
      }
      auto reg = hub->registry_.lock();
      auto found = reg->streams.find(config.stream_name);
      std::shared_ptr<StreamGroup> group =
          found != reg->streams.end() ? found->second : nullptr;
      if (group) {
        if (Status st = check_joins_group(*group, config, where); !st) return st.error();
      }
      auto stream = make_stream(*hub);
      if (!group) {
        group = std::make_shared<StreamGroup>(stream->name());
        reg->streams.emplace(stream->name(), group);
      }
      group->add(stream);  // checked above, under the same lock
      stream->set_group(group);
      TF_INFO(kComp, "stream \"%s\"%s%s%s added to %s (%zu streams)", stream->name().c_str(),
              stream->rendition().empty() ? "" : " (rendition \"",
              stream->rendition().c_str(), stream->rendition().empty() ? "" : "\")",
              where.c_str(), reg->streams.size());
      return Acquired{hub, stream};
    }
  }
  auto hub = std::make_shared<Hub>(config);
  auto stream = make_stream(*hub);
  auto group = std::make_shared<StreamGroup>(stream->name());
  group->add(stream);
  stream->set_group(group);
  hub->registry_.lock()->streams.emplace(stream->name(), group);
  if (Status st = hub->start(); !st) return st.error();
  if (shareable) hubs->by_endpoint.emplace(endpoint_key(config), hub);
  return Acquired{hub, stream};
}

void Hub::release(const std::shared_ptr<Hub> &hub, const std::shared_ptr<Stream> &stream) {
  stream->stop();  // subscribes fail from now on
  {
    auto reg = hub->registry_.lock();
    auto it = reg->streams.find(stream->name());
    if (it != reg->streams.end() && stream->group() == it->second) {
      it->second->remove(stream);
      if (it->second->empty()) reg->streams.erase(it);
    }
  }
  hub->close_sessions(stream->subscribers());
  stream->unsubscribe_all();
  auto hubs = shared_hubs().lock();
  if (!hub->registry_.lock()->streams.empty()) return;
  auto it = hubs->by_endpoint.find(endpoint_key(hub->config_));
  if (it != hubs->by_endpoint.end() && it->second == hub) hubs->by_endpoint.erase(it);
  hub->stop();  // under the lock: a sink starting now binds after the port is free
}

Hub::Hub(const ServerConfig &config) : config_(config) {
  config_.queue_max_buffers = std::max<uint32_t>(1, config.queue_max_buffers);
  config_.queue_max_bytes = std::max<uint64_t>(1, config.queue_max_bytes);
  config_.io_threads = std::max(1u, config.io_threads);
  session_config_.handshake_timeout = config_.handshake_timeout;
  session_config_.hello_timeout = config_.hello_timeout;
  session_config_.client_timeout = config_.client_timeout;
  session_config_.queue =
      QueueLimits{config_.queue_max_buffers, config_.queue_max_bytes, config_.queue_max_time};
  session_config_.max_clients = config_.max_clients;
}

Hub::~Hub() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw (join/lock failures are not recoverable here)
  }
}

Status Hub::start() {
  auto ctx = tls::make_server_context(config_.tls);
  if (!ctx) return ctx.error();
  ListenerConfig lc;
  lc.host = config_.host;
  lc.port = config_.port;
  lc.backlog = config_.listen_backlog;
  lc.send_buffer_size = config_.send_buffer_size;
  max_handshakes_ = effective_max_handshakes(config_.max_handshakes);
  lc.max_handshakes = max_handshakes_;
  lc.max_handshakes_per_address = config_.max_handshakes_per_address;
  lc.max_clients = config_.max_clients;
  listener_ = std::make_unique<Listener>(io_, lc, ctx.value(), &counters_);
  auto port = listener_->listen();
  if (!port) return port.error();
  bound_port_ = port.value();

  work_.emplace(io_.get_executor());
  listener_->start([this](asio::ip::tcp::socket socket, std::string address, std::string source) {
    on_accepted(std::move(socket), std::move(address), std::move(source));
  });
  for (unsigned i = 0; i < config_.io_threads; ++i) {
    registry_.lock()->running_threads++;
    threads_.emplace_back([this] {
      io_.run();
      registry_.lock()->running_threads--;
      registry_changed_.notify_all();
    });
  }
  return Status::Ok();
}

void Hub::set_context(tls::ContextPtr ctx, const tls::ServerTlsConfig &tls) {
  listener_->set_context(ctx);
  {
    auto hubs = shared_hubs().lock();  // config_ is read under it by acquire()
    config_.tls = tls;
  }
  if (!tls.crl_file.empty()) check_revocations(ctx);
}

void Hub::check_revocations(const tls::ContextPtr &ctx) {
  std::vector<std::shared_ptr<Session>> all;
  {
    auto reg = registry_.lock();
    for (auto &kv : reg->sessions) all.push_back(kv.second);
  }
  TF_DEBUG(kComp, "CRL reloaded: checking %zu connections", all.size());
  for (auto &s : all) {
    asio::post(s->executor(), [s, ctx] { s->check_revocation(ctx); });
  }
}

bool Hub::wait(std::chrono::milliseconds timeout, const std::function<bool()> &pred) {
  auto reg = registry_.lock();
  return reg.wait_for(registry_changed_, timeout, [&](const Registry &) { return pred(); });
}

void Hub::notify() {
  { auto reg = registry_.lock(); }
  registry_changed_.notify_all();
}

void Hub::on_accepted(asio::ip::tcp::socket socket, std::string address, std::string source) {
  std::shared_ptr<Session> s;
  {
    auto reg = registry_.lock();
    if (reg->stopping) {
      listener_->end_handshake(source);
      return;
    }
    const uint64_t id = reg->next_id++;
    s = std::make_shared<Session>(this, session_config_, &counters_, std::move(socket), id,
                                  std::move(address), std::move(source), listener_->context());
    reg->sessions.emplace(id, s);
  }
  TF_DEBUG(kComp, "client %" PRIu64 " %s: connection accepted", s->info().id,
           s->info().address.c_str());
  asio::dispatch(s->executor(), [s] { s->start(); });
}

std::shared_ptr<Stream> Hub::find_stream(const std::string &name,
                                         std::vector<std::string> *names) {
  auto reg = registry_.lock();
  auto it = reg->streams.find(name);
  if (it != reg->streams.end()) {
    if (auto entry = it->second->entry()) return entry;
  }
  // Every stream, the default one ("") included: a server with only its default stream
  // must not say it has none.
  if (names) {
    for (auto &kv : reg->streams) names->push_back(kv.first);
  }
  return nullptr;
}

std::vector<wire::StreamSummary> Hub::list_streams() {
  std::vector<std::shared_ptr<StreamGroup>> streams;
  {
    auto reg = registry_.lock();
    for (auto &kv : reg->streams) streams.push_back(kv.second);
  }
  std::vector<wire::StreamSummary> out;
  for (auto &st : streams) out.push_back(st->summary());
  return out;
}

void Hub::on_ready(const std::shared_ptr<Session> &s) {
  Stream &stream = *s->stream();
  {
    auto reg = registry_.lock();  // with the registry, for publish_eos_and_flush's wait
    stream.counters().clients++;
    stream.counters().clients_total++;
  }
  TF_INFO(kComp, "client %" PRIu64 " %s: connected to stream \"%s\"%s%s%s%s", s->info().id,
          s->info().address.c_str(), stream.name().c_str(),
          stream.rendition().empty() ? "" : ", rendition ", stream.rendition().c_str(),
          s->info().subject.empty() ? "" : " as ", s->info().subject.c_str());
  s->home()->client_added(s->info());
}

void Hub::on_rendition_switched(const std::shared_ptr<Session> &s, Stream &from, Stream &to,
                                const RenditionChange &change) {
  {
    auto reg = registry_.lock();  // as on_ready: publish_eos_and_flush waits on the counts
    if (reg->sessions.count(s->info().id) == 0) return;
    from.counters().clients--;
    to.counters().clients++;
  }
  registry_changed_.notify_all();
  TF_INFO(kComp, "client %" PRIu64 " %s: rendition %s -> %s (%s)", s->info().id,
          s->info().address.c_str(), change.from.c_str(), change.to.c_str(),
          change.reason.c_str());
  s->home()->rendition_changed(s->info(), change);
}

void Hub::on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                    const std::string &error) {
  const bool added = s->added();  // reported as added, so reported as removed
  // Refused by authorization: never added, but reported removed (status forbidden).
  const bool refused = reason == RemoveReason::kForbidden;
  const std::shared_ptr<Stream> stream = s->stream();
  {
    auto reg = registry_.lock();
    if (reg->sessions.erase(s->info().id) == 0) return;
    if (added && stream) stream->counters().clients--;
  }
  if (holds_handshake_slot(was)) listener_->end_handshake(s->source());
  if (holds_client_slot(was)) listener_->release_client();
  if (stream) stream->unsubscribe(s->info().id);
  registry_changed_.notify_all();
  if ((added || refused) && stream) {
    TF_INFO(kComp, "client %" PRIu64 " %s: removed (%s%s%s)", s->info().id,
            s->info().address.c_str(), remove_reason_name(reason), error.empty() ? "" : ": ",
            error.c_str());
    s->home()->client_removed(s->info(), reason, error);
  }
}

std::vector<std::shared_ptr<Stream>> Hub::all_streams() {
  std::vector<std::shared_ptr<StreamGroup>> groups;
  {
    auto reg = registry_.lock();
    for (auto &kv : reg->streams) groups.push_back(kv.second);
  }
  std::vector<std::shared_ptr<Stream>> out;
  for (auto &g : groups) {
    for (auto &st : g->renditions()) out.push_back(st);
  }
  return out;
}

void Hub::on_handshake_failed(const Session &s, const Error &e) {
  for (auto &st : all_streams()) st->handshake_failed(s.info().address, e);
}

void Hub::close_sessions(const std::vector<std::shared_ptr<Session>> &sessions) {
  std::vector<uint64_t> ids;
  for (auto &s : sessions) {
    ids.push_back(s->info().id);
    asio::post(s->executor(), [s] { s->shutdown(); });
  }
  auto left = [&](const Registry &r) {
    return std::none_of(ids.begin(), ids.end(),
                        [&](uint64_t id) { return r.sessions.count(id) > 0; });
  };
  std::vector<std::shared_ptr<Session>> stalled;
  {
    auto reg = registry_.lock();
    // Grace period for the goodbye; short, so a stalled client delays stop() little.
    reg.wait_for(registry_changed_, std::chrono::milliseconds(500), left);
    for (uint64_t id : ids) {
      auto it = reg->sessions.find(id);
      if (it != reg->sessions.end()) stalled.push_back(it->second);
    }
  }
  // Whoever did not take its goodbye in time is closed now.
  for (auto &s : stalled) {
    asio::post(s->executor(), [s] { s->close(RemoveReason::kServerStopped, ""); });
  }
  if (!stalled.empty()) {
    auto reg = registry_.lock();
    reg.wait_for(registry_changed_, std::chrono::seconds(2), left);
  }
}

void Hub::stop() {
  std::vector<std::shared_ptr<Session>> all;
  {
    auto reg = registry_.lock();
    if (reg->stopping) return;
    reg->stopping = true;
    for (auto &kv : reg->sessions) all.push_back(kv.second);
  }
  if (!listener_) return;  // never started
  listener_->close();
  for (auto &st : all_streams()) st->stop();
  if (!threads_.empty()) close_sessions(all);
  all.clear();
  work_.reset();
  {
    // Let in-flight handlers finish for a bounded time, then stop the loop regardless.
    auto reg = registry_.lock();
    reg.wait_for(registry_changed_, std::chrono::seconds(2),
                 [](const Registry &r) { return r.running_threads == 0; });
  }
  io_.stop();
  for (auto &t : threads_) t.join();
  threads_.clear();
  const std::vector<std::shared_ptr<Stream>> streams = all_streams();
  std::map<uint64_t, std::shared_ptr<Session>> gone;
  std::map<std::string, std::shared_ptr<StreamGroup>> groups;
  {
    auto reg = registry_.lock();
    gone.swap(reg->sessions);  // destroyed outside the lock
    groups.swap(reg->streams);
  }
  for (auto &st : streams) st->unsubscribe_all();
  TF_INFO(kComp, "listener on port %u stopped", bound_port_);
}

}  // namespace tlsframe
