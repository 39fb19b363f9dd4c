#include "core/session.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "core/keepalive.h"
#include "core/log.h"
#include "core/stream.h"

namespace tlsframe {
namespace {

using tcp = asio::ip::tcp;
constexpr auto kComp = log::Component::kServer;
constexpr size_t kWriteChunk = 65536;  // most bytes per write syscall (asio's transfer_all default)
// Plaintext encrypted per write: what a session holds of a message beyond the
// shared copy. 256 KiB: a 720p JPEG frame or an H.264 keyframe is one part
// (one encryption pass and one write completion per frame); with 64 KiB parts
// an 83 KB frame took two, and 128 clients as fast as possible delivered
// about 20% less (bench throughput, alternating runs).
constexpr size_t kEncryptChunk = 256 * 1024;
// After a handshake alert: how long the client's remaining bytes are read
// and discarded, waiting for its close, before the socket is closed anyway.
constexpr std::chrono::milliseconds kLingerAfterAlert{500};
// WELCOME's `server` field.
constexpr const char *kServerText = "tlsframe " TLSFRAME_VERSION;

}  // namespace

const char *phase_name(Phase p) {
  switch (p) {
    case Phase::kAccepted:
      return "accepted";
    case Phase::kAwaitingHello:
      return "awaiting-hello";
    case Phase::kHandshaking:
      return "handshaking";
    case Phase::kRefusing:
      return "refusing";
    case Phase::kSelecting:
      return "selecting";
    case Phase::kAuthorizing:
      return "authorizing";
    case Phase::kStreaming:
      return "streaming";
    case Phase::kLeaving:
      return "leaving";
    case Phase::kClosed:
      return "closed";
  }
  return "unknown";
}

bool holds_handshake_slot(Phase p) {
  return p == Phase::kAccepted || p == Phase::kAwaitingHello || p == Phase::kHandshaking;
}

bool holds_client_slot(Phase p) {
  return p == Phase::kSelecting || p == Phase::kAuthorizing || p == Phase::kStreaming ||
         p == Phase::kLeaving;
}

Session::Session(SessionHost *host, const SessionConfig &config, ServerCounters *counters,
                 asio::ip::tcp::socket socket, uint64_t id, std::string address, std::string source,
                 const tls::ContextPtr &ctx)
    : host_(host),
      config_(config),
      server_counters_(counters),
      source_(std::move(source)),
      socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      tls_(ctx),
      select_timer_(socket_.get_executor()),
      queue_(config.queue),
      reader_(wire::Protocol::kV2Server, wire::kMaxClientPayload, wire::kMaxClientPayload),
      ctx_(ctx) {
  info_.id = id;
  info_.address = std::move(address);
}

bool Session::enqueue(const MessagePtr &msg, const Stream *from) {
  auto inbox = inbox_.lock();
  if (msg->type == wire::MessageType::kBuffer) {
    if (inbox->buffers >= inbox_limit()) {
      auto oldest =
          std::find_if(inbox->messages.begin(), inbox->messages.end(),
                       [](const Inbound &m) { return m.msg->type == wire::MessageType::kBuffer; });
      inbox->messages.erase(oldest);
      inbox->buffers--;
      inbox->gap = true;
      if (added()) count_drop();  // stream_counters_ was set before the session was subscribed
    }
    inbox->buffers++;
  }
  inbox->messages.push_back(Inbound{msg, from});
  if (inbox->posted) return false;
  inbox->posted = true;
  return true;
}

size_t Session::inbox_limit() const {
  return std::max<size_t>(2 * size_t{config_.queue.max_buffers}, 64);
}

void Session::drain() {
  bool gap;
  {
    auto inbox = inbox_.lock();
    draining_.swap(inbox->messages);
    inbox->buffers = 0;
    gap = inbox->gap;
    inbox->gap = false;
    inbox->posted = false;
  }
  if (gap && phase_ == Phase::kStreaming) {
    queue_.resync();  // what follows the dropped buffers may depend on them
    set_last_error("behind the stream: dropped buffers, resuming on a keyframe");
    stream_->request_keyframe(info_.id);  // nothing on a stream without delta units
  }
  for (const auto &m : draining_) {
    if (m.from == nullptr || m.from == stream_.get()) {
      deliver(m.msg);
    } else {
      deliver_from_other(m.msg, m.from);  // session_rendition.cpp
    }
  }
  draining_.clear();
}

void Session::start() {
  if (phase_ != Phase::kAccepted) return;  // stop() got here first
  enter(Phase::kAwaitingHello);
  accepted_at_ = std::chrono::steady_clock::now();
  enable_dead_peer_detection();
  const auto &cfg = config_;
  const bool hello_first =
      cfg.hello_timeout.count() > 0 &&
      (cfg.handshake_timeout.count() == 0 || cfg.hello_timeout < cfg.handshake_timeout);
  if (hello_first) {
    arm_handshake_timer(cfg.hello_timeout, "no ClientHello within the hello timeout");
  } else if (cfg.handshake_timeout.count() > 0) {
    arm_handshake_timer(cfg.handshake_timeout, "TLS handshake did not finish in time");
  }
  if (!tls_.ok()) {
    fail_handshake(Error{Error::Kind::kTls, "cannot create a TLS session", tls::drain_errors()});
    return;
  }
  handshake_step();
}

void Session::arm_handshake_timer(std::chrono::nanoseconds after, const char *what) {
  auto self = shared_from_this();
  timer_.expires_after(after);
  timer_.async_wait([self, what](std::error_code ec) {
    if (!ec && self->in_handshake()) {
      self->fail_handshake(Error{Error::Kind::kTimeout, what, ""});
    }
  });
}

void Session::enable_dead_peer_detection() {
  const KeepaliveSettings k = keepalive_for_timeout(config_.client_timeout);
  if (!k.enabled) return;
  const std::error_code ec = apply_keepalive(socket_.native_handle(), k);
  if (ec) {
    TF_DEBUG(kComp, "client %" PRIu64 " %s: no dead-peer detection: %s", info_.id,
             info_.address.c_str(), ec.message().c_str());
    return;
  }
  dead_peer_detection_ = true;
  user_timeout_on_ = true;
}

void Session::keep_user_timeout(bool on) {
  if (on == user_timeout_on_ || !dead_peer_detection_) return;
  const KeepaliveSettings k = keepalive_for_timeout(config_.client_timeout);
  const std::error_code ec = set_user_timeout(
      socket_.native_handle(), on ? k.user_timeout : std::chrono::milliseconds(0));
  if (!ec) user_timeout_on_ = on;
}

bool Session::close_if_peer_vanished(std::error_code ec) {
  // The kernel aborts with ETIMEDOUT, or with the last ICMP or neighbour
  // error it saw meanwhile (a peer gone from the local network: no route).
  const bool vanished = ec == asio::error::timed_out || ec == asio::error::host_unreachable ||
                        ec == asio::error::network_unreachable;
  if (!vanished || closed()) return false;
  const std::string why = "the peer stopped answering: no TCP acknowledgement within the "
                          "timeout (" + ec.message() + ")";
  TF_WARNING(kComp, "client %" PRIu64 " %s: %s; dropping it", info_.id, info_.address.c_str(),
             why.c_str());
  close(RemoveReason::kTimeout, why);
  return true;
}

void Session::on_hello_started() {
  enter(Phase::kHandshaking);
  const auto &cfg = config_;
  if (cfg.handshake_timeout.count() > 0) {
    auto left = cfg.handshake_timeout - (std::chrono::steady_clock::now() - accepted_at_);
    arm_handshake_timer(std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(1)),
                        "TLS handshake did not finish in time");
  } else {
    timer_.cancel();
  }
}

void Session::deliver(const MessagePtr &msg) {
  if (phase_ != Phase::kStreaming) return;
  const ClientQueue::Decision d = queue_.offer(msg, std::chrono::steady_clock::now());
  for (size_t i = 0; i < d.dropped; ++i) count_drop();
  if (d.ask_keyframe) stream_->request_keyframe(info_.id);
  if (d.late) {
    note_late(d);
    if (d.outcome == ClientQueue::Outcome::kDroppedOverflow) stream_->request_keyframe(info_.id);
    if (!d.queued()) return;
    queued();
    return;
  }
  switch (d.outcome) {
    case ClientQueue::Outcome::kDroppedOverflow:
      set_last_error("queue full: skipping to the next keyframe");
      TF_LOGV(kComp, "client %" PRIu64 " %s: queue full, dropping delta unit", info_.id,
              info_.address.c_str());
      // Waits for the next keyframe from now: ask for one (merged per stream).
      stream_->request_keyframe(info_.id);
      return;
    case ClientQueue::Outcome::kQueuedAfterPurge:
      set_last_error("queue full: dropped the queued buffers, resumed on a keyframe");
      TF_DEBUG(kComp, "client %" PRIu64 " %s: queue full, dropped %zu queued, resync on keyframe",
               info_.id, info_.address.c_str(), d.purged);
      break;
    case ClientQueue::Outcome::kQueued:
      break;
    case ClientQueue::Outcome::kIgnored:
    case ClientQueue::Outcome::kDroppedForKeyframe:
      return;
  }
  queued();
}

void Session::note_late(const ClientQueue::Decision &d) {
  // LOG level: under overload every client may shed a share of its frames.
  set_last_error("queued longer than time-max: dropped late buffers, resuming on a keyframe");
  TF_LOGV(kComp, "client %" PRIu64 " %s: %zu buffers older than time-max dropped (%s)", info_.id,
          info_.address.c_str(), d.dropped, queue_outcome_name(d.outcome));
}

void Session::deliver_cached_gop(const std::vector<MessagePtr> &gop) {
  if (phase_ != Phase::kStreaming) return;
  const size_t n = queue_.offer_burst(gop);
  TF_DEBUG(kComp, "client %" PRIu64 " %s: starts on the cached GOP (%zu buffers, %" PRIu64
           " bytes), no keyframe asked for",
           info_.id, info_.address.c_str(), n, queue_.burst_bytes());
  queued();
}

void Session::close(RemoveReason reason, const std::string &error) {
  if (phase_ == Phase::kClosed) return;
  const Phase was = phase_;
  enter(Phase::kClosed);
  std::error_code ignored;
  timer_.cancel();
  select_timer_.cancel();
  if (queue_.writing() || writing_records_) {
    // Dropped mid-write (no progress, error, server stopping): reset the
    // connection. A plain close would leave the socket orphaned, holding
    // its send queue for as long as the peer keeps its window shut.
    socket_.set_option(asio::socket_base::linger(true, 0), ignored);
  } else {
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
  }
  socket_.close(ignored);
  queue_.clear();
  publish_depth();
  leave_renditions();  // session_rendition.cpp
  host_->on_closed(shared_from_this(), was, reason, error);
}

void Session::enter(Phase next) {
  const Phase from = phase_;
  bool ok = false;
  switch (next) {
    case Phase::kAccepted:
      break;
    case Phase::kAwaitingHello:
      ok = from == Phase::kAccepted;
      break;
    case Phase::kHandshaking:
      ok = from == Phase::kAwaitingHello;
      break;
    case Phase::kRefusing:
    case Phase::kSelecting:
      ok = from == Phase::kAwaitingHello || from == Phase::kHandshaking;
      break;
    case Phase::kAuthorizing:
      ok = from == Phase::kSelecting;
      break;
    case Phase::kStreaming:
      ok = from == Phase::kSelecting || from == Phase::kAuthorizing;
      break;
    case Phase::kLeaving:
      ok = from == Phase::kStreaming || from == Phase::kSelecting || from == Phase::kAuthorizing;
      break;
    case Phase::kClosed:
      ok = from != Phase::kClosed;
      break;
  }
  if (!ok) {
    // A bug, not a peer's doing: say so loudly and keep the old phase.
    TF_ERROR(kComp, "client %" PRIu64 ": no transition from %s to %s", info_.id, phase_name(from),
             phase_name(next));
    return;
  }
  phase_ = next;
  if (next == Phase::kStreaming) {
    ready_at_ = std::chrono::steady_clock::now();
    counters_.added = true;
  }
}

void Session::shutdown() {
  if (phase_ == Phase::kClosed || phase_ == Phase::kRefusing || phase_ == Phase::kLeaving) return;
  if (phase_ != Phase::kStreaming && phase_ != Phase::kSelecting &&
      phase_ != Phase::kAuthorizing) {
    close(RemoveReason::kServerStopped, "");
    return;
  }
  send_final(wire::ErrorCode::kShuttingDown, "server is shutting down",
             RemoveReason::kServerStopped);
}

ClientStats Session::stats() const {
  ClientStats s;
  s.info = info_;
  s.frames_sent = counters_.frames_sent.load();
  s.frames_dropped = counters_.frames_dropped.load();
  s.bytes_sent = counters_.bytes_sent.load();
  s.queue_buffers = counters_.depth_buffers.load();
  s.queue_bytes = counters_.depth_bytes.load();
  s.connected_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - ready_at_).count();
  s.last_error = *last_error_.lock();
  fill_rendition_stats(s);  // session_rendition.cpp
  return s;
}

void Session::handshake_step() {
  std::error_code ec;
  const TlsRecord::Step step = tls_.handshake(&ec);
  const bool done = step == TlsRecord::Step::kDone;
  if (step == TlsRecord::Step::kFailed) {
    Error e = tls_.describe(ec);
    // Send the alert OpenSSL queued (tells the client why), then give up.
    if (tls_.has_output()) {
      tls_.take_output(wire_);
      auto self = shared_from_this();
      asio::async_write(socket_, asio::buffer(wire_), [self, e](std::error_code ec, size_t) {
        if (self->closed()) return;
        if (ec) {
          self->fail_handshake(e);
          return;
        }
        self->linger_then_fail(e);
      });
      return;
    }
    fail_handshake(e);
    return;
  }
  auto self = shared_from_this();
  auto next = [self, done] {
    if (done) {
      self->on_handshake({});
      return;
    }
    self->socket_.async_read_some(asio::buffer(self->read_buf_),
                                  [self](std::error_code ec, size_t n) {
                                    if (self->closed()) return;
                                    if (ec) {
                                      self->on_handshake(ec);
                                      return;
                                    }
                                    if (self->phase_ == Phase::kAwaitingHello && n > 0) {
                                      self->on_hello_started();
                                    }
                                    self->tls_.feed(self->read_buf_.data(), n);
                                    self->handshake_step();
                                  });
  };
  if (!tls_.has_output()) {
    next();
    return;
  }
  tls_.take_output(wire_);
  asio::async_write(socket_, asio::buffer(wire_), [self, next](std::error_code ec, size_t) {
    if (self->closed()) return;
    self->wire_.clear();
    if (ec) {
      self->on_handshake(ec);
      return;
    }
    next();
  });
}

void Session::on_handshake(std::error_code ec) {
  if (closed()) return;
  if (ec) {
    fail_handshake(tls_.describe(ec));
    return;
  }
  timer_.cancel();
  info_.subject = tls_.peer_subject();
  // The ALPN callback selected "tlsframe/2" or nothing (a v1 client); it
  // refused anything else during the handshake.
  if (tls_.alpn() == wire::kAlpnV2) {
    version_ = wire::Version::kV2;
    client_messages_ = ClientMessages::kV2;
  } else if (tls_.alpn() == wire::kAlpnHttp) {
    start_browser();  // session_browser.cpp
  }
  // Admission happens only now: connections that never finish a handshake
  // cannot take max-clients slots from real clients.
  if (!host_->admit(*this)) {
    TF_WARNING(kComp, "client %" PRIu64 " %s refused: max-clients (%u) reached", info_.id,
               info_.address.c_str(), config_.max_clients);
    send_final(wire::ErrorCode::kServerFull, "server full: max-clients reached, try again later",
               RemoveReason::kClosed);
    return;
  }
  enter(Phase::kSelecting);
  if (revoked_since_handshake_began()) return;
  on_admitted();
  // The client's first message may have come with its last handshake flight:
  // it is already in the record layer, not in the socket.
  if (!closed()) on_read({}, 0);
}

void Session::on_admitted() {
  if (version_ == wire::Version::kV1) {
    join("");
    return;
  }
  limiter_.emplace(wire::kClientMessageRate, wire::kClientMessageBurst,
                   std::chrono::steady_clock::now());
  const bool browser = client_messages_ == ClientMessages::kBrowser;
  TF_DEBUG(kComp, "client %" PRIu64 " %s: %s", info_.id, info_.address.c_str(),
           browser ? "browser (http/1.1), awaiting its request" : "protocol version 2, awaiting HELLO");
  const auto limit = config_.handshake_timeout;
  if (limit.count() <= 0) return;
  // The HELLO is due within the handshake timeout, counted from the accept.
  const auto left = std::max<std::chrono::nanoseconds>(
      limit - (std::chrono::steady_clock::now() - accepted_at_), std::chrono::nanoseconds(1));
  auto self = shared_from_this();
  select_timer_.expires_after(left);
  const char *what = browser ? "no HTTP request within the handshake timeout"
                             : "no HELLO within the handshake timeout";
  select_timer_.async_wait([self, what](std::error_code ec) {
    if (ec || self->phase_ != Phase::kSelecting) return;
    TF_WARNING(kComp, "client %" PRIu64 " %s: %s; dropping it", self->info_.id,
               self->info_.address.c_str(), what);
    self->send_final(wire::ErrorCode::kTimeout, what, RemoveReason::kTimeout);
  });
}

void Session::join(const std::string &name) {
  if (!authorized_for(name)) return;  // refused, or the application decides (kAuthorizing)
  std::vector<std::string> names;
  std::shared_ptr<Stream> stream = host_->find_stream(name, &names);
  Stream::Joined joined;
  if (stream) {
    home_ = stream;
    stream = first_rendition(stream);  // session_rendition.cpp
    stream_ = stream;
    stream_counters_ = &stream->counters();
    // Subscribed first: whatever is published from here on reaches the session.
    joined = stream->subscribe(shared_from_this(), version_);
  }
  if (!joined.ok) {
    stream_.reset();
    home_.reset();
    stream_counters_ = nullptr;
    TF_INFO(kComp, "client %" PRIu64 " %s: no stream named \"%s\"", info_.id,
            info_.address.c_str(), name.c_str());
    send_final(wire::ErrorCode::kNoSuchStream, wire::no_such_stream_reason(name, names),
               RemoveReason::kClosed);
    return;
  }
  select_timer_.cancel();
  // A browser's 101 (or multipart 200) only now, authorized and joined: before the caps.
  if (browser_) start_browser_stream();  // session_browser.cpp
  enter(Phase::kStreaming);
  host_->on_ready(shared_from_this());
  if (version_ == wire::Version::kV2 && client_messages_ == ClientMessages::kV2) {
    auto welcome = std::make_shared<Message>();
    welcome->type = wire::MessageType::kWelcome;
    const auto interval_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(stream_->keyframe_interval()).count();
    welcome->bytes =
        welcome_bytes(static_cast<uint32_t>(std::clamp<int64_t>(interval_ms, 0, UINT32_MAX)));
    send_control(welcome);
  }
  start_renditions();  // session_rendition.cpp
  if (joined.caps) deliver(joined.caps);
  if (joined.at_eos) {
    auto eos_msg = std::make_shared<Message>();
    eos_msg->type = wire::MessageType::kEos;
    eos_msg->bytes = wire::encode_eos(version_);
    deliver(eos_msg);
  } else if (!joined.gop.empty()) {
    deliver_cached_gop(joined.gop);  // starts on a keyframe now: nothing to ask upstream
  } else if (joined.has_delta) {
    queue_.keyframe_asked();
    stream_->request_keyframe(info_.id);
  }
}

// Authorization: authorized-clients (the stream's rules), then the
// application (accept_client), once the stream is known. The application is
// asked without any thread waiting: the session waits in kAuthorizing and
// the answer is posted to its strand; the handshake timeout, counted from
// the request, bounds the wait.
bool Session::authorized_for(const std::string &name) {
  std::shared_ptr<Stream> stream = host_->find_stream(name, nullptr);
  if (!stream) return true;  // join() answers NO_SUCH_STREAM
  if (stream == authorized_) return true;
  const std::string shown = stream->name().empty() ? "the default stream"
                                                   : "stream \"" + stream->name() + "\"";
  if (phase_ == Phase::kAuthorizing) {
    // The stream was replaced (its sink restarted) while the application decided.
    refuse_forbidden(stream, "forbidden: " + shown + " changed while it was being authorized");
    return false;
  }
  const authz::Identity &id = identity();
  if (!stream->authorizes(id)) {
    TF_WARNING(kComp, "client %" PRIu64 " %s (%s): not in authorized-clients of %s; refusing it",
               info_.id, info_.address.c_str(), id.present ? id.subject.c_str() : "no certificate",
               shown.c_str());
    refuse_forbidden(stream, wire::forbidden_reason(stream->name()));
    return false;
  }
  AcceptRequest request;
  request.id = info_.id;
  request.address = info_.address;
  request.stream_name = stream->name();
  request.identity = id;
  const uint64_t token = ++decision_token_;
  std::weak_ptr<Session> weak = shared_from_this();
  std::weak_ptr<void> lifetime = host_->lifetime();
  AcceptDecision decide = [weak, lifetime, token](bool accept) {
    // The server's lifetime first: the session (if this is the last
    // reference) then dies while its I/O context still exists.
    std::shared_ptr<void> server = lifetime.lock();
    if (!server) return;
    std::shared_ptr<Session> s = weak.lock();
    if (!s) return;
    asio::post(s->executor(), [weak, token, accept] {
      if (auto self = weak.lock()) self->on_accept_decision(token, accept);
    });
  };
  if (!stream->ask_accept(request, std::move(decide))) {
    authorized_ = stream;  // nobody to ask: accepted
    return true;
  }
  enter(Phase::kAuthorizing);
  authorizing_ = stream;
  requested_name_ = name;
  TF_DEBUG(kComp, "client %" PRIu64 " %s: asking the application about it", info_.id,
           info_.address.c_str());
  const auto limit = config_.handshake_timeout;
  if (limit.count() <= 0) {
    select_timer_.cancel();  // no limit: the application's answer alone ends the wait
    return false;
  }
  auto self = shared_from_this();
  select_timer_.expires_after(limit);
  select_timer_.async_wait([self, token](std::error_code ec) {
    if (ec || self->phase_ != Phase::kAuthorizing || self->decision_token_ != token) return;
    TF_WARNING(kComp, "client %" PRIu64 " %s: no accept-client answer within the handshake "
               "timeout; refusing it",
               self->info_.id, self->info_.address.c_str());
    self->refuse_forbidden(self->authorizing_,
                           "forbidden: no authorization decision within the handshake timeout");
  });
  return false;
}

const authz::Identity &Session::identity() {
  if (!identity_) {
    SSL *ssl = tls_.native_handle();
    identity_ = authz::identity_of(ssl ? SSL_get0_peer_certificate(ssl) : nullptr);
  }
  return *identity_;
}

void Session::refuse_forbidden(const std::shared_ptr<Stream> &stream, const std::string &why) {
  // Not subscribed and never added: stream_ only names the stream its
  // client-removed (status forbidden) is reported to.
  stream_ = stream;
  authorizing_.reset();
  send_final(wire::ErrorCode::kForbidden, why, RemoveReason::kForbidden);
}

void Session::on_accept_decision(uint64_t token, bool accept) {
  if (phase_ != Phase::kAuthorizing || token != decision_token_) return;  // too late, or closed
  select_timer_.cancel();
  if (!accept) {
    TF_INFO(kComp, "client %" PRIu64 " %s: refused by the application (accept-client)", info_.id,
            info_.address.c_str());
    refuse_forbidden(authorizing_, "forbidden: the server's application refused this client");
    return;
  }
  authorized_ = std::move(authorizing_);
  authorizing_.reset();
  join(requested_name_);
}

bool Session::revoked_since_handshake_began() {
  const tls::ContextPtr now = host_->current_context();
  if (!now || now == ctx_) return false;
  if (!tls::peer_revoked(tls_.native_handle(), now->native_handle())) return false;
  TF_WARNING(kComp, "client %" PRIu64 " %s (%s): certificate revoked by the CRL loaded during its "
             "handshake; refusing it",
             info_.id, info_.address.c_str(), info_.subject.c_str());
  send_final(wire::ErrorCode::kRevoked, wire::kRevokedReason, RemoveReason::kRevoked);
  return true;
}

void Session::check_revocation(const tls::ContextPtr &ctx) {
  const bool past_handshake = phase_ == Phase::kSelecting || phase_ == Phase::kAuthorizing ||
                              phase_ == Phase::kStreaming;
  if (!past_handshake || !ctx) return;  // handshakes in progress: checked as they complete
  if (!tls::peer_revoked(tls_.native_handle(), ctx->native_handle())) return;
  TF_WARNING(kComp, "client %" PRIu64 " %s (%s): certificate revoked by the reloaded CRL; "
             "dropping it",
             info_.id, info_.address.c_str(), info_.subject.c_str());
  set_last_error("certificate revoked");
  send_final(wire::ErrorCode::kRevoked, wire::kRevokedReason, RemoveReason::kRevoked);
  // A client that does not read its ERROR is closed anyway, soon.
  auto self = shared_from_this();
  select_timer_.expires_after(kRevokedCloseWithin);
  select_timer_.async_wait([self](std::error_code ec) {
    if (!ec && !self->closed()) self->close(RemoveReason::kRevoked, wire::kRevokedReason);
  });
}

void Session::send_control(const MessagePtr &msg) {
  queue_.offer(msg);  // neither caps nor a buffer: always queued
  queued();
}

void Session::linger_then_fail(const Error &e) {
  // The alert is sent; a close now, with client bytes unread (a v2 client's
  // HELLO follows its last flight), would reset the connection and could
  // discard the alert on the client's side. So: FIN after the alert, and
  // read and discard until the client closes too, for a bounded time.
  std::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  auto self = shared_from_this();
  timer_.expires_after(kLingerAfterAlert);
  timer_.async_wait([self, e](std::error_code ec) {
    if (!ec && !self->closed()) self->fail_handshake(e);
  });
  discard_until_closed(e);
}

void Session::discard_until_closed(const Error &e) {
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(read_buf_), [self, e](std::error_code ec, size_t) {
    if (self->closed()) return;
    if (ec) {
      self->fail_handshake(e);
      return;
    }
    self->discard_until_closed(e);
  });
}

void Session::fail_handshake(const Error &e) {
  server_counters_->handshake_failures++;
  TF_WARNING(kComp, "client %" PRIu64 " %s: handshake failed: %s (%s)", info_.id,
             info_.address.c_str(), e.message.c_str(), e.detail.c_str());
  host_->on_handshake_failed(*this, e);
  close(RemoveReason::kError, e.message);
}

void Session::start_read() {
  auto self = shared_from_this();
  socket_.async_read_some(asio::buffer(read_buf_),
                          [self](std::error_code ec, size_t n) { self->on_read(ec, n); });
}

void Session::on_read(std::error_code ec, size_t n) {
  if (closed()) return;
  if (!ec) {
    if (n > 0) tls_.feed(read_buf_.data(), n);
    // Every whole record that arrived, then read again.
    for (;;) {
      const TlsRecord::Read r = tls_.read(plain_buf_.data(), plain_buf_.size());
      if (r.want_more) {
        flush_records();  // e.g. the answer to a KeyUpdate
        start_read();
        return;
      }
      if (r.ec) {
        ec = r.ec;
        break;
      }
      on_plaintext(plain_buf_.data(), r.size);
      if (closed()) return;
    }
  }
  if (close_if_peer_vanished(ec)) return;
  Error e = tls_.describe(ec);
  bool clean = e.kind == Error::Kind::kClosed;
  const bool last = queue_.writing() && (queue_.front()->type == wire::MessageType::kEos ||
                                         queue_.front()->type == wire::MessageType::kError);
  if (clean && last) {
    // Closed while its last message (EOS, or an ERROR goodbye) is being
    // written: a client closes on it, and when the write waited for room
    // the close can be handled before the write's completion. The
    // write's outcome tells: written (its reason) or failed (kClosed).
    return;
  }
  close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
}

void Session::on_plaintext(const uint8_t *data, size_t size) {
  if (phase_ != Phase::kStreaming && phase_ != Phase::kSelecting &&
      phase_ != Phase::kAuthorizing) {
    return;  // leaving: ignored
  }
  if (client_messages_ == ClientMessages::kBrowser) {
    on_browser_bytes(data, size);  // session_browser.cpp
    return;
  }
  if (client_messages_ == ClientMessages::kNone) {
    // Version 1 clients only listen: their first byte is the violation.
    TF_WARNING(kComp, "client %" PRIu64 " %s sent %zu bytes of application data; dropping it",
               info_.id, info_.address.c_str(), size);
    send_final(wire::ErrorCode::kProtocol,
               "protocol version 1 clients only listen: the client sent application data",
               RemoveReason::kProtocol);
    return;
  }
  while (size > 0 && !closed()) {
    const wire::MessageReader::Space space = reader_.prepare();
    if (space.size == 0) {
      close(RemoveReason::kError, "out of memory for a client message");
      return;
    }
    const size_t n = std::min(size, space.size);
    std::memcpy(space.data, data, n);
    data += n;
    size -= n;
    const wire::DecodeResult r = reader_.commit(n);
    if (r.status == wire::DecodeStatus::kError) {
      protocol_error("bad client message: " + r.error);
      return;
    }
    if (r.status == wire::DecodeStatus::kMessage) on_client_message(*reader_.take());
    if (phase_ != Phase::kStreaming && phase_ != Phase::kSelecting &&
        phase_ != Phase::kAuthorizing) {
      return;
    }
  }
}

void Session::on_client_message(const std::vector<uint8_t> &message) {
  // Every message counts, valid or not: a flood is refused before it is parsed.
  if (!limiter_ || !limiter_->allow(std::chrono::steady_clock::now())) {
    TF_WARNING(kComp, "client %" PRIu64 " %s: over %u messages/s (bursts of %u); dropping it",
               info_.id, info_.address.c_str(), wire::kClientMessageRate,
               wire::kClientMessageBurst);
    send_final(wire::ErrorCode::kRateLimited, "rate limited: too many messages from the client",
               RemoveReason::kProtocol);
    return;
  }
  wire::MessageView view;
  const wire::DecodeResult r = wire::decode(message.data(), message.size(), wire::kMaxClientPayload,
                                            wire::Protocol::kV2Server, view);
  if (r.status != wire::DecodeStatus::kMessage) {
    protocol_error("bad client message: " + r.error);
    return;
  }
  switch (view.type) {
    case wire::MessageType::kHello:
      if (phase_ != Phase::kSelecting) {
        protocol_error("a second HELLO");
        return;
      }
      renditions_.asked.assign(view.rendition);
      join(std::string(view.stream));
      return;
    case wire::MessageType::kListStreams: {
      auto list = std::make_shared<Message>();
      list->type = wire::MessageType::kStreamList;
      list->bytes = wire::encode_stream_list(host_->list_streams());
      send_control(list);
      return;
    }
    case wire::MessageType::kKeyframeRequest:
      if (phase_ != Phase::kStreaming) {
        protocol_error("KEYFRAME_REQUEST before WELCOME");
        return;
      }
      TF_LOGV(kComp, "client %" PRIu64 ": KEYFRAME_REQUEST", info_.id);
      stream_->request_keyframe(info_.id);
      return;
    case wire::MessageType::kRenditionRequest:
      if (phase_ != Phase::kStreaming) {
        protocol_error("RENDITION_REQUEST before WELCOME");
        return;
      }
      on_rendition_request(view.rendition);  // session_rendition.cpp
      return;
    default:
      protocol_error(std::string("unexpected client message ") +
                     wire::message_type_name(view.type));
      return;
  }
}

void Session::protocol_error(const std::string &why) {
  TF_WARNING(kComp, "client %" PRIu64 " %s: %s; dropping it", info_.id, info_.address.c_str(),
             why.c_str());
  if (phase_ == Phase::kStreaming || phase_ == Phase::kSelecting ||
      phase_ == Phase::kAuthorizing) {
    send_final(wire::ErrorCode::kProtocol, "protocol error: " + why, RemoveReason::kProtocol);
    return;
  }
  close(RemoveReason::kProtocol, why);
}

void Session::send_final(wire::ErrorCode code, const std::string &text, RemoveReason reason) {
  // No more stream messages; an admitted client stays counted until it closes.
  const bool admitted = phase_ == Phase::kStreaming || phase_ == Phase::kSelecting ||
                        phase_ == Phase::kAuthorizing;
  enter(admitted ? Phase::kLeaving : Phase::kRefusing);
  select_timer_.cancel();
  final_reason_ = reason;
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kError;
  msg->bytes = wire::encode_error(code, text, version_);
  const size_t dropped = queue_.push_final(msg);
  for (size_t i = 0; i < dropped; ++i) count_drop();
  queued();
}

void Session::queued() {
  publish_depth();
  if (!queue_.writing() && !writing_records_) do_write();
}

void Session::do_write() {
  if (phase_ == Phase::kStreaming) {
    // No buffer older than time-max is started (offer() checks only when
    // the next buffer comes).
    const ClientQueue::Decision d = queue_.expire(std::chrono::steady_clock::now());
    for (size_t i = 0; i < d.dropped; ++i) count_drop();
    if (d.late) note_late(d);
    if (d.outcome == ClientQueue::Outcome::kDroppedOverflow) stream_->request_keyframe(info_.id);
  }
  const MessagePtr *msg = queue_.begin_write();
  if (!msg) return;
  if (queue_.size() > 1 && (*msg)->type == wire::MessageType::kBuffer) {
    backlogged_at_ = std::chrono::steady_clock::now();  // frames waiting: see keepalive.h
    keep_user_timeout(false);
  }
  write_offset_ = 0;
  last_progress_ = std::chrono::steady_clock::now();
  const auto timeout = config_.client_timeout;
  if (timeout.count() > 0 && !progress_timer_armed_) arm_progress_timer(timeout);
  if (browser_) {
    write_part(browser::frame(*msg, browser_->framing));  // its own framing, same data
    return;
  }
  write_part(*msg);
}

void Session::write_part(const MessagePtr &msg) {
  auto self = shared_from_this();
  const size_t end = std::min(msg->wire_size(), write_offset_ + kEncryptChunk);
  // Records go to the socket as OpenSSL finishes them; only what the kernel
  // does not take is kept (copied) in wire_ and written asynchronously.
  const int fd = socket_.native_handle();
  size_t sent = 0;
  std::error_code ec;
  while (write_offset_ < end && !ec) {
    const auto [p, contiguous] = msg->piece(write_offset_);
    const size_t n = std::min(end - write_offset_, contiguous);
    ec = tls_.encrypt_to(fd, p, n, write_offset_ + n < end, &sent);
    write_offset_ += n;
  }
  if (sent > 0) last_progress_ = std::chrono::steady_clock::now();
  if (ec) {
    asio::post(executor(), [self, msg, ec] { self->on_write(ec, msg); });
    return;
  }
  if (!tls_.has_output()) {  // the kernel took it all
    asio::post(executor(), [self, msg] { self->on_part_written({}, msg); });
    return;
  }
  tls_.take_output(wire_);
  // The completion condition runs on the strand after each partial write:
  // any byte the kernel took counts as progress, so a slow client that keeps
  // reading is not mistaken for a stalled one.
  asio::async_write(
      socket_, asio::buffer(wire_),
      [self, done = size_t{0}](const std::error_code &wec, size_t n) mutable -> size_t {
        if (n > done) {
          done = n;
          self->last_progress_ = std::chrono::steady_clock::now();
        }
        return wec ? 0 : kWriteChunk;
      },
      [self, msg](std::error_code ec, size_t) { self->on_part_written(ec, msg); });
}

void Session::on_part_written(std::error_code ec, const MessagePtr &msg) {
  if (!ec && !closed() && write_offset_ < msg->wire_size()) {
    tls_.recycle(wire_, false);  // reuse it
    write_part(msg);
    return;
  }
  on_write(ec, msg);
}

void Session::arm_progress_timer(std::chrono::nanoseconds after) {
  progress_timer_armed_ = true;
  timer_.expires_after(after);
  auto self = shared_from_this();
  timer_.async_wait([self](std::error_code ec) {
    self->progress_timer_armed_ = false;
    if (ec || self->closed() || !self->queue_.writing()) return;
    const auto timeout = self->config_.client_timeout;
    const auto stuck = std::chrono::steady_clock::now() - self->last_progress_;
    if (stuck < timeout) {
      self->arm_progress_timer(timeout - stuck);
      return;
    }
    TF_WARNING(kComp, "client %" PRIu64 " %s: no write progress, dropping it", self->info_.id,
               self->info_.address.c_str());
    self->close(RemoveReason::kTimeout, "client made no progress within the timeout");
  });
}

void Session::flush_records() {
  if (queue_.writing() || !tls_.has_output() || closed()) return;
  writing_records_ = true;
  tls_.take_output(wire_);
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(wire_), [self](std::error_code ec, size_t) {
    self->writing_records_ = false;
    if (self->closed()) return;
    self->wire_.clear();
    if (ec) {
      if (self->close_if_peer_vanished(ec)) return;
      Error e = self->tls_.describe(ec);
      bool clean = e.kind == Error::Kind::kClosed;
      self->close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
      return;
    }
    if (!self->queue_.empty() && !self->queue_.writing()) self->do_write();
  });
}

void Session::on_write(std::error_code ec, const MessagePtr &msg) {
  if (closed()) return;
  // The buffer just written becomes the next encryption target, so a
  // session holds one frame-sized buffer, not two; an idle session gives it
  // back (idle clients stay small).
  tls_.recycle(wire_, queue_.size() <= 1);
  if (ec) {
    if (close_if_peer_vanished(ec)) return;
    Error e = tls_.describe(ec);
    bool clean = e.kind == Error::Kind::kClosed;
    close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
    return;
  }
  const size_t n = msg->wire_size();
  counters_.bytes_sent += n;
  if (stream_counters_) stream_counters_->bytes_sent += n;
  queue_.end_write();
  // Caught up, and for a whole timeout: a slow reader's queue empties now and
  // then while its kernel buffer is still full (see keepalive.h).
  if (queue_.empty() && std::chrono::steady_clock::now() - backlogged_at_ >= config_.client_timeout) {
    keep_user_timeout(true);
  }
  switch (msg->type) {
    case wire::MessageType::kBuffer:
      counters_.frames_sent++;
      break;
    case wire::MessageType::kCaps:
    case wire::MessageType::kWelcome:
    case wire::MessageType::kStreamList:
    case wire::MessageType::kRendition:
      break;
    case wire::MessageType::kHello:  // client -> server types are never queued
    case wire::MessageType::kKeyframeRequest:
    case wire::MessageType::kListStreams:
    case wire::MessageType::kRenditionRequest:
      break;
    case wire::MessageType::kEos:
      finish(RemoveReason::kEos);
      return;
    case wire::MessageType::kError:
      finish(final_reason_);
      return;
  }
  publish_depth();
  if (!queue_.empty()) do_write();
}

void Session::finish(RemoveReason reason) {
  // close_notify tells the client the stream ended here, not that the
  // connection was cut (docs/PROTOCOL.md section 9). A few tens of bytes:
  // written at once into the socket buffer, or not at all (a client that
  // stopped reading does not hold the close up).
  if (!writing_records_ && tls_.shutdown()) {
    tls_.take_output(wire_);
    std::error_code ec;
    socket_.non_blocking(true, ec);
    if (!ec) socket_.write_some(asio::buffer(wire_), ec);
    if (ec) {
      TF_DEBUG(kComp, "client %" PRIu64 ": close_notify not sent: %s", info_.id,
               ec.message().c_str());
    }
  }
  close(reason, "");
}

void Session::set_last_error(const char *text) {
  auto last = last_error_.lock();
  if (*last != text) *last = text;
}

void Session::count_drop() {
  counters_.frames_dropped++;
  if (stream_counters_) stream_counters_->frames_dropped++;
}

void Session::publish_depth() {
  counters_.depth_buffers.store(queue_.size());
  counters_.depth_bytes.store(queue_.bytes());
}
}  // namespace tlsframe
