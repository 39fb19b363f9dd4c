#include "core/server.h"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <cinttypes>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core/client_queue.h"
#include "core/endpoint.h"
#include "core/log.h"
#include "core/tls_record.h"

namespace tlsframe {
namespace {

using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;
constexpr auto kComp = log::Component::kServer;
constexpr size_t kWriteChunk = 65536;  // most bytes per write syscall (asio's transfer_all default)
// Plaintext encrypted per write: what a session holds of a message beyond the shared copy.
constexpr size_t kEncryptChunk = 65536;

// The "address" a per-address handshake limit counts: the IPv4 address
// (also when mapped into IPv6), or the /64 prefix of an IPv6 address, since
// one host or site commonly holds a whole /64.
std::string source_key(const asio::ip::address &a) {
  if (a.is_v4()) return a.to_string();
  asio::ip::address_v6 v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  asio::ip::address_v6::bytes_type b = v6.to_bytes();
  for (size_t i = 8; i < b.size(); ++i) b[i] = 0;
  return asio::ip::address_v6(b).to_string() + "/64";
}

// Most handshakes allowed at once: the configured number, but at most half
// the open-file soft limit, so handshakes alone never exhaust descriptors
// that connected clients and the rest of the process need.
size_t effective_max_handshakes(size_t configured) {
  rlimit rl{};
  size_t limit = std::max<size_t>(1, configured);
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const size_t half = std::max<size_t>(1, static_cast<size_t>(rl.rlim_cur) / 2);
    if (limit > half) {
      TF_INFO(kComp, "max handshakes %zu clamped to %zu: half the open-file limit (%llu)", limit,
              half, static_cast<unsigned long long>(rl.rlim_cur));
      limit = half;
    }
  }
  return limit;
}

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

// A session's lifecycle. Session::enter() is the one place that changes it
// and refuses a transition not listed there.
//
//   kAccepted ─► kAwaitingHello ─► kHandshaking ─┬─► kStreaming ─► kLeaving
//                      │                         └─► kRefusing
//                      └──────────────(first byte)────┘         any ─► kClosed
enum class Phase {
  kAccepted,       // registered by the listener; start() has not run (holds a handshake slot)
  kAwaitingHello,  // started; no byte from the client yet (hello timeout)
  kHandshaking,    // the ClientHello is arriving (handshake timeout from the accept)
  kRefusing,       // handshake done, not admitted (max-clients): the ERROR goodbye is queued
  kStreaming,      // admitted and reported added: gets the stream
  kLeaving,        // admitted; the ERROR goodbye is queued (server stopping)
  kClosed,         // socket closed, reported to the server
};
const char *phase_name(Phase p);
bool holds_handshake_slot(Phase p);  // counted in the listener's handshakes in progress
bool is_admitted(Phase p);           // counted against max_clients, reported added

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

bool is_admitted(Phase p) {
  return p == Phase::kStreaming || p == Phase::kLeaving;
}

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

class Session;


struct Server::Impl {
  ServerConfig config;
  ServerCallbacks callbacks;

  // Declared before everything holding sockets or handlers so it is destroyed last.
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  Strand accept_strand{asio::make_strand(io)};
  tcp::acceptor acceptor{accept_strand};  // only used on accept_strand
  asio::steady_timer accept_retry{accept_strand};
  Strand keyframe_strand{asio::make_strand(io)};
  asio::steady_timer keyframe_timer{keyframe_strand};  // only used on keyframe_strand
  std::vector<std::thread> threads;
  uint16_t bound_port = 0;
  std::atomic<unsigned> running_threads{0};

  mutable std::mutex mutex;  // protects the fields down to next_id
  tls::ContextPtr ctx;       // for new sessions; reload_tls() replaces it
  std::condition_variable sessions_changed;
  std::map<uint64_t, std::shared_ptr<Session>> sessions;  // accepted, not yet closed
  size_t admitted = 0;     // sessions past the handshake and within max_clients
  size_t handshaking = 0;  // sessions still in their TLS handshake
  std::map<std::string, size_t> handshaking_by_source;  // the same, by source_key()
  MessagePtr current_caps;
  bool has_delta = false;  // the stream has delta units: joiners ask for a keyframe
  bool eos = false;        // EOS published and no buffer since
  // Keyframe requests (see request_keyframe()):
  std::optional<std::chrono::steady_clock::time_point> last_keyframe_request;
  std::vector<uint64_t> keyframe_waiters;  // sessions whose request waits for the interval's end
  bool keyframe_timer_armed = false;
  bool stopping = false;
  bool flush_aborted = false;
  uint64_t next_id = 1;

  // Only used by the publishing thread (render/event), never concurrently.
  std::vector<std::shared_ptr<Session>> snapshot;
  uint64_t sequence = 0;

  std::atomic<uint64_t> ready_count{0}, clients_total{0}, handshake_failures{0}, refused{0},
      buffers_published{0}, bytes_sent{0}, frames_dropped{0};

  void do_accept();
  void on_accept(tcp::socket socket);
  void on_ready(const std::shared_ptr<Session> &s);
  bool admit(const std::string &source);
  // A session wants a keyframe (it joined a delta-unit stream). Calls
  // keyframe_wanted now if the last call is an interval old, else once at the
  // interval's end if a session that asked is still connected then.
  void request_keyframe(uint64_t session_id);
  void on_keyframe_timer();
  void end_handshake(const std::string &source);  // with mutex held
  // The session left phase `was` for kClosed.
  void on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                 const std::string &error);
  // Runs update() and snapshots the sessions under one lock, then posts msg
  // to each session's strand. Called only by the publishing thread.
  template <typename Update>
  void post_to_all(const MessagePtr &msg, Update &&update);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl *server, tcp::socket socket, uint64_t id, std::string address,
          std::string source, tls::ContextPtr ctx)
      : server_(server),
        source_(std::move(source)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        tls_(ctx),
        queue_(QueueLimits{server->config.queue_max_buffers, server->config.queue_max_bytes}) {
    info_.id = id;
    info_.address = std::move(address);
  }

  asio::any_io_executor executor() { return socket_.get_executor(); }
  const ClientInfo &info() const { return info_; }  // subject is set before the session is ready
  const std::string &source() const { return source_; }
  void keyframe_asked() { queue_.keyframe_asked(); }  // on the strand, by on_ready()
  bool added() const { return added_.load(); }  // reported as added (handshake done, admitted)

  // Publishing thread: hands msg to the session. Returns true when the caller
  // must post drain() to the session's strand (none is pending yet), so a
  // session behind by k messages costs one post, not k. The inbox holds at
  // most inbox_limit() buffers: beyond that the oldest is dropped and
  // the session resyncs on a keyframe, as for its own queue.
  bool enqueue(const MessagePtr &msg) {
    std::lock_guard<std::mutex> lock(inbox_mutex_);
    if (msg->type == wire::MessageType::kBuffer) {
      if (inbox_buffers_ >= inbox_limit()) {
        auto oldest = std::find_if(inbox_.begin(), inbox_.end(), [](const MessagePtr &m) {
          return m->type == wire::MessageType::kBuffer;
        });
        inbox_.erase(oldest);
        inbox_buffers_--;
        inbox_gap_ = true;
        if (added_.load()) count_drop();
      }
      inbox_buffers_++;
    }
    inbox_.push_back(msg);
    if (inbox_posted_) return false;
    inbox_posted_ = true;
    return true;
  }

  // Buffers an inbox holds before dropping: well above the session's own
  // queue, so a briefly busy I/O thread does not cost a healthy client
  // frames; the messages are shared, so this bounds distinct frames held.
  size_t inbox_limit() const {
    return std::max<size_t>(2 * size_t{server_->config.queue_max_buffers}, 64);
  }

  // All members below run on the session's strand.
  void drain() {
    bool gap;
    {
      std::lock_guard<std::mutex> lock(inbox_mutex_);
      draining_.swap(inbox_);
      inbox_buffers_ = 0;
      gap = inbox_gap_;
      inbox_gap_ = false;
      inbox_posted_ = false;
    }
    if (gap && phase_ == Phase::kStreaming) {
      queue_.resync();  // what follows the dropped buffers may depend on them
      set_last_error("behind the stream: dropped buffers, resuming on a keyframe");
    }
    for (const auto &m : draining_) deliver(m);
    draining_.clear();
  }

  void start() {
    if (phase_ != Phase::kAccepted) return;  // stop() got here first
    enter(Phase::kAwaitingHello);
    accepted_at_ = std::chrono::steady_clock::now();
    const auto &cfg = server_->config;
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

  // (Re)arms the handshake deadline `after` from now; the wait it replaces ends aborted.
  void arm_handshake_timer(std::chrono::nanoseconds after, const char *what) {
    auto self = shared_from_this();
    timer_.expires_after(after);
    timer_.async_wait([self, what](std::error_code ec) {
      if (!ec && self->in_handshake()) {
        self->fail_handshake(Error{Error::Kind::kTimeout, what, ""});
      }
    });
  }

  // The first bytes of the ClientHello arrived: from now on only the
  // handshake timeout (counted from the accept) applies.
  void on_hello_started() {
    enter(Phase::kHandshaking);
    const auto &cfg = server_->config;
    if (cfg.handshake_timeout.count() > 0) {
      auto left = cfg.handshake_timeout - (std::chrono::steady_clock::now() - accepted_at_);
      arm_handshake_timer(std::max<std::chrono::nanoseconds>(left, std::chrono::nanoseconds(1)),
                          "TLS handshake did not finish in time");
    } else {
      timer_.cancel();
    }
  }

  void deliver(const MessagePtr &msg) {
    if (phase_ != Phase::kStreaming) return;
    const ClientQueue::Decision d = queue_.offer(msg);
    for (size_t i = 0; i < d.dropped; ++i) count_drop();
    if (d.ask_keyframe) server_->request_keyframe(info_.id);
    switch (d.outcome) {
      case ClientQueue::Outcome::kDroppedOverflow:
        set_last_error("queue full: skipping to the next keyframe");
        TF_LOGV(kComp, "client %" PRIu64 " %s: queue full, dropping delta unit", info_.id,
                info_.address.c_str());
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

  void close(RemoveReason reason, const std::string &error) {
    if (phase_ == Phase::kClosed) return;
    const Phase was = phase_;
    enter(Phase::kClosed);
    std::error_code ignored;
    timer_.cancel();
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
    server_->on_closed(shared_from_this(), was, reason, error);
  }

  bool closed() const { return phase_ == Phase::kClosed; }
  bool in_handshake() const { return phase_ == Phase::kAwaitingHello || phase_ == Phase::kHandshaking; }

  // The one place the phase changes.
  void enter(Phase next) {
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
      case Phase::kStreaming:
        ok = from == Phase::kAwaitingHello || from == Phase::kHandshaking;
        break;
      case Phase::kLeaving:
        ok = from == Phase::kStreaming;
        break;
      case Phase::kClosed:
        ok = from != Phase::kClosed;
        break;
    }
    if (!ok) {
      // A bug, not a peer's doing: say so loudly and keep the old phase.
      TF_ERROR(kComp, "client %" PRIu64 ": no transition from %s to %s", info_.id,
               phase_name(from), phase_name(next));
      return;
    }
    phase_ = next;
    if (next == Phase::kStreaming) {
      ready_at_ = std::chrono::steady_clock::now();
      added_ = true;
    }
  }

  // Server stopping: an admitted client gets ERROR(shutting down) after the
  // message being written, if any; stop() closes whoever has not taken it
  // within its grace period (a stalled client).
  void shutdown() {
    if (phase_ == Phase::kClosed || phase_ == Phase::kRefusing || phase_ == Phase::kLeaving) return;
    if (phase_ != Phase::kStreaming) {
      close(RemoveReason::kServerStopped, "");
      return;
    }
    send_final(wire::ErrorCode::kShuttingDown, "server is shutting down",
               RemoveReason::kServerStopped);
  }

  ClientStats stats() const {
    ClientStats s;
    s.info = info_;
    s.frames_sent = frames_sent_.load();
    s.frames_dropped = frames_dropped_.load();
    s.bytes_sent = bytes_sent_.load();
    s.queue_buffers = depth_buffers_.load();
    s.queue_bytes = depth_bytes_.load();
    s.connected_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ready_at_).count();
    std::lock_guard<std::mutex> lock(last_error_mutex_);
    s.last_error = last_error_;
    return s;
  }

 private:
  // One step of the server handshake: run OpenSSL on what has arrived, send
  // what it produced, then finish or read more.
  void handshake_step() {
    std::error_code ec;
    const TlsRecord::Step step = tls_.handshake(&ec);
    const bool done = step == TlsRecord::Step::kDone;
    if (step == TlsRecord::Step::kFailed) {
      Error e = tls_.describe(ec);
      // Send the alert OpenSSL queued (tells the client why), then give up.
      if (tls_.has_output()) {
        tls_.take_output(wire_);
        auto self = shared_from_this();
        asio::async_write(socket_, asio::buffer(wire_), [self, e](std::error_code, size_t) {
          if (!self->closed()) self->fail_handshake(e);
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
      self->socket_.async_read_some(
          asio::buffer(self->read_buf_), [self](std::error_code ec, size_t n) {
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

  void on_handshake(std::error_code ec) {
    if (closed()) return;
    if (ec) {
      fail_handshake(tls_.describe(ec));
      return;
    }
    timer_.cancel();
    info_.subject = tls_.peer_subject();
    // Admission happens only now: connections that never finish a handshake
    // cannot take max-clients slots from real clients.
    if (!server_->admit(source_)) {
      TF_WARNING(kComp, "client %" PRIu64 " %s refused: max-clients (%u) reached", info_.id,
                 info_.address.c_str(), server_->config.max_clients);
      send_final(wire::ErrorCode::kServerFull, "server full: max-clients reached, try again later",
                 RemoveReason::kClosed);
      return;
    }
    enter(Phase::kStreaming);
    server_->on_ready(shared_from_this());
    start_read();
  }

  void fail_handshake(const Error &e) {
    server_->handshake_failures++;
    TF_WARNING(kComp, "client %" PRIu64 " %s: handshake failed: %s (%s)", info_.id,
               info_.address.c_str(), e.message.c_str(), e.detail.c_str());
    if (server_->callbacks.handshake_failed) server_->callbacks.handshake_failed(info_.address, e);
    close(RemoveReason::kError, e.message);
  }

  // Clients only listen; the read detects their close or a protocol breach.
  void start_read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(read_buf_), [self](std::error_code ec, size_t n) {
      if (self->closed()) return;
      if (!ec) {
        self->tls_.feed(self->read_buf_.data(), n);
        const TlsRecord::Read r = self->tls_.read(self->read_buf_.data(), self->read_buf_.size());
        if (r.want_more) {
          self->flush_records();  // e.g. the answer to a KeyUpdate
          self->start_read();
          return;
        }
        n = r.size;
        ec = r.ec;
      }
      if (ec) {
        Error e = self->tls_.describe(ec);
        bool clean = e.kind == Error::Kind::kClosed;
        const bool last =
            self->queue_.writing() && (self->queue_.front()->type == wire::MessageType::kEos ||
                                       self->queue_.front()->type == wire::MessageType::kError);
        if (clean && last) {
          // Closed while its last message (EOS, or an ERROR goodbye) is being
          // written: a client closes on it, and when the write waited for room
          // the close can be handled before the write's completion. The
          // write's outcome tells: written (its reason) or failed (kClosed).
          return;
        }
        self->close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
        return;
      }
      if (n > 0) {
        TF_WARNING(kComp, "client %" PRIu64 " %s sent %zu bytes of application data; dropping it",
                   self->info_.id, self->info_.address.c_str(), n);
        self->close(RemoveReason::kProtocol, "client sent application data");
      }
    });
  }

  // Queue one last ERROR message (after what is being written), then close.
  void send_final(wire::ErrorCode code, const char *text, RemoveReason reason) {
    // No more stream messages; an admitted client stays counted until it closes.
    enter(phase_ == Phase::kStreaming ? Phase::kLeaving : Phase::kRefusing);
    final_reason_ = reason;
    auto msg = std::make_shared<Message>();
    msg->type = wire::MessageType::kError;
    msg->bytes = wire::encode_error(code, text);
    const size_t dropped = queue_.push_final(msg);
    for (size_t i = 0; i < dropped; ++i) count_drop();
    queued();
  }

  // Something was queued: publish the depth and start a write if none is in flight.
  void queued() {
    publish_depth();
    if (!queue_.writing() && !writing_records_) do_write();
  }

  void do_write() {
    const MessagePtr *msg = queue_.begin_write();
    if (!msg) return;
    write_offset_ = 0;
    last_progress_ = std::chrono::steady_clock::now();
    const auto timeout = server_->config.client_timeout;
    if (timeout.count() > 0 && !progress_timer_armed_) arm_progress_timer(timeout);
    write_part(*msg);
  }

  // Encrypts the next part of msg (at most kEncryptChunk plaintext bytes,
  // whole records) and writes it; once all of msg is written, on_write(). A
  // part, not the whole message, so a client that stops reading holds one
  // part in memory, not a copy of a large frame. Records OpenSSL produced
  // earlier (a KeyUpdate answer) are already in the output and go first, as
  // they must.
  void write_part(const MessagePtr &msg) {
    auto self = shared_from_this();
    const size_t end = std::min(msg->wire_size(), write_offset_ + kEncryptChunk);
    tls_.reserve_for(end - write_offset_);
    std::error_code ec;
    const size_t head = msg->bytes.size();
    while (write_offset_ < end && !ec) {
      const bool in_head = write_offset_ < head;
      const uint8_t *p =
          in_head ? msg->bytes.data() + write_offset_ : msg->payload + (write_offset_ - head);
      const size_t n = std::min(end, in_head ? head : msg->wire_size()) - write_offset_;
      ec = tls_.encrypt(p, n);
      write_offset_ += n;
    }
    if (ec) {
      asio::post(executor(), [self, msg, ec] { self->on_write(ec, msg); });
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
        [self, msg](std::error_code ec, size_t) {
          if (!ec && !self->closed() && self->write_offset_ < msg->wire_size()) {
            self->tls_.recycle(self->wire_, false);  // reuse it
            self->write_part(msg);
            return;
          }
          self->on_write(ec, msg);
        });
  }

  // The write-progress deadline: one timer wait per timeout period, not one
  // per message. On expiry, a write that made no progress for the whole
  // timeout drops the client; otherwise the timer re-arms for what is left;
  // an idle session lets the timer lapse until its next write.
  void arm_progress_timer(std::chrono::nanoseconds after) {
    progress_timer_armed_ = true;
    timer_.expires_after(after);
    auto self = shared_from_this();
    timer_.async_wait([self](std::error_code ec) {
      self->progress_timer_armed_ = false;
      if (ec || self->closed() || !self->queue_.writing()) return;
      const auto timeout = self->server_->config.client_timeout;
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

  // Writes records OpenSSL produced outside a message write, when no write
  // is in flight; otherwise they go out ahead of the next message.
  void flush_records() {
    if (queue_.writing() || !tls_.has_output() || closed()) return;
    writing_records_ = true;
    tls_.take_output(wire_);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(wire_), [self](std::error_code ec, size_t) {
      self->writing_records_ = false;
      if (self->closed()) return;
      self->wire_.clear();
      if (ec) {
        Error e = self->tls_.describe(ec);
        bool clean = e.kind == Error::Kind::kClosed;
        self->close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
        return;
      }
      if (!self->queue_.empty() && !self->queue_.writing()) self->do_write();
    });
  }

  void on_write(std::error_code ec, const MessagePtr &msg) {
    if (closed()) return;
    // The buffer just written becomes the next encryption target, so a
    // session holds one frame-sized buffer, not two; an idle session gives it
    // back (idle clients stay small).
    tls_.recycle(wire_, queue_.size() <= 1);
    if (ec) {
      Error e = tls_.describe(ec);
      bool clean = e.kind == Error::Kind::kClosed;
      close(clean ? RemoveReason::kClosed : RemoveReason::kError, clean ? "" : e.message);
      return;
    }
    const size_t n = msg->wire_size();
    bytes_sent_ += n;
    server_->bytes_sent += n;
    queue_.end_write();
    switch (msg->type) {
      case wire::MessageType::kBuffer:
        frames_sent_++;
        break;
      case wire::MessageType::kCaps:
        break;
      case wire::MessageType::kEos:
        close(RemoveReason::kEos, "");
        return;
      case wire::MessageType::kError:
        close(final_reason_, "");
        return;
    }
    publish_depth();
    if (!queue_.empty()) do_write();
  }

  void set_last_error(const char *text) {
    std::lock_guard<std::mutex> lock(last_error_mutex_);
    if (last_error_ != text) last_error_ = text;
  }

  void count_drop() {
    frames_dropped_++;
    server_->frames_dropped++;
  }

  void publish_depth() {
    depth_buffers_.store(queue_.size());
    depth_bytes_.store(queue_.bytes());
  }

  Server::Impl *server_;      // outlives every session (owns the io_context)
  const std::string source_;  // source_key() of the peer: per-address handshake accounting
  tcp::socket socket_;
  asio::steady_timer timer_;     // handshake deadline, then write-progress deadline
  TlsRecord tls_;                // OpenSSL over memory: records in, records out
  std::vector<uint8_t> wire_;    // TLS records being written to the socket
  bool writing_records_ = false;  // wire_ holds a flush_records() write, not a message
  ClientInfo info_;
  // Strand-only state:
  Phase phase_ = Phase::kAccepted;
  std::chrono::steady_clock::time_point accepted_at_;  // start of the handshake deadline
  RemoveReason final_reason_ = RemoveReason::kClosed;
  ClientQueue queue_;  // what to send, and the policy deciding it
  std::chrono::steady_clock::time_point last_progress_;  // write start, or its latest partial write
  size_t write_offset_ = 0;            // bytes of the message being written already encrypted
  bool progress_timer_armed_ = false;  // a write-progress wait is pending
  std::chrono::steady_clock::time_point ready_at_;
  std::array<uint8_t, 256> read_buf_{};
  // Read by stats() from any thread:
  std::atomic<bool> added_{false};  // entered kStreaming: reported by client_added (never reset)
  std::atomic<uint64_t> frames_sent_{0}, frames_dropped_{0}, bytes_sent_{0}, depth_buffers_{0},
      depth_bytes_{0};
  std::mutex inbox_mutex_;               // protects the four inbox fields below
  std::deque<MessagePtr> inbox_;         // published, not yet taken by drain()
  size_t inbox_buffers_ = 0;             // buffer messages in inbox_
  bool inbox_posted_ = false;            // a drain() is posted and has not taken the inbox yet
  bool inbox_gap_ = false;               // buffers were dropped from inbox_ since the last drain
  std::deque<MessagePtr> draining_;      // strand-only: the batch drain() is delivering
  mutable std::mutex last_error_mutex_;  // protects last_error_ (set on the strand, read by stats)
  std::string last_error_;
};

// Handlers capture the raw Impl pointer: the I/O threads are joined before Impl dies.
void Server::Impl::do_accept() {
  Impl *self = this;
  acceptor.async_accept(asio::make_strand(io), [self](std::error_code ec, tcp::socket socket) {
    if (!self->acceptor.is_open()) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EMFILE and friends: back off instead of spinning.
      TF_WARNING(kComp, "accept failed: %s", ec.message().c_str());
      self->accept_retry.expires_after(std::chrono::milliseconds(100));
      self->accept_retry.async_wait([self](std::error_code tec) {
        if (!tec) self->do_accept();
      });
      return;
    }
    self->on_accept(std::move(socket));
    self->do_accept();
  });
}

void Server::Impl::on_accept(tcp::socket socket) {
  std::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  if (config.send_buffer_size > 0) {
    socket.set_option(asio::socket_base::send_buffer_size(config.send_buffer_size), ec);
  }
  tcp::endpoint peer = socket.remote_endpoint(ec);
  std::string address = ec ? std::string("unknown") : format_endpoint(peer);
  std::string source = ec ? address : source_key(peer.address());
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping) return;
    if (handshaking >= config.max_handshakes) {
      // Closed before any TLS work: handshakes in flight stay bounded.
      refused++;
      TF_WARNING(kComp, "%s: %zu handshakes in progress, closing the new connection",
                 address.c_str(), handshaking);
      return;
    }
    size_t &from_source = handshaking_by_source[source];
    if (config.max_handshakes_per_address > 0 && from_source >= config.max_handshakes_per_address) {
      // DEBUG, not WARNING: a flood would otherwise flood the log too.
      refused++;
      TF_DEBUG(kComp, "%s: %zu handshakes in progress from %s, closing the new connection",
               address.c_str(), from_source, source.c_str());
      return;
    }
    from_source++;
    handshaking++;
    uint64_t id = next_id++;
    s = std::make_shared<Session>(this, std::move(socket), id, address, source, ctx);
    sessions.emplace(id, s);
  }
  TF_DEBUG(kComp, "client %" PRIu64 " %s: connection accepted", s->info().id, address.c_str());
  asio::dispatch(s->executor(), [s] { s->start(); });
}

void Server::Impl::on_ready(const std::shared_ptr<Session> &s) {
  MessagePtr caps;
  bool want_key, at_eos;
  {
    std::lock_guard<std::mutex> lock(mutex);
    caps = current_caps;
    want_key = has_delta;
    at_eos = eos;
    ready_count++;
    clients_total++;
  }
  TF_INFO(kComp, "client %" PRIu64 " %s: connected%s%s", s->info().id, s->info().address.c_str(),
          s->info().subject.empty() ? "" : " as ", s->info().subject.c_str());
  if (callbacks.client_added) callbacks.client_added(s->info());
  if (caps) s->deliver(caps);
  if (at_eos) {
    auto eos_msg = std::make_shared<Message>();
    eos_msg->type = wire::MessageType::kEos;
    eos_msg->bytes = wire::encode_eos();
    s->deliver(eos_msg);
  } else if (want_key) {
    s->keyframe_asked();
    request_keyframe(s->info().id);
  }
}

void Server::Impl::request_keyframe(uint64_t session_id) {
  if (!callbacks.keyframe_wanted) return;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = config.keyframe_request_interval;
  bool now_due = false;
  std::optional<std::chrono::steady_clock::time_point> arm_at;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping) return;
    if (!keyframe_timer_armed && (!last_keyframe_request || interval.count() <= 0 ||
                                  now - *last_keyframe_request >= interval)) {
      last_keyframe_request = now;
      now_due = true;
    } else {
      // Within the interval: merged into one request at its end, sent only
      // if a client that asked is still connected then.
      keyframe_waiters.push_back(session_id);
      if (!keyframe_timer_armed) {
        keyframe_timer_armed = true;
        arm_at = *last_keyframe_request + interval;
      }
    }
  }
  if (now_due) {
    TF_DEBUG(kComp, "client %" PRIu64 ": asking upstream for a keyframe", session_id);
    callbacks.keyframe_wanted();
  } else if (arm_at) {
    Impl *self = this;
    asio::post(keyframe_strand, [self, at = *arm_at] {
      self->keyframe_timer.expires_at(at);
      self->keyframe_timer.async_wait([self](std::error_code ec) {
        if (!ec) self->on_keyframe_timer();
      });
    });
  }
}

void Server::Impl::on_keyframe_timer() {
  bool wanted = false;
  size_t asked = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    keyframe_timer_armed = false;
    asked = keyframe_waiters.size();
    for (uint64_t id : keyframe_waiters) {
      auto it = sessions.find(id);
      wanted = wanted || (it != sessions.end() && it->second->added());
    }
    keyframe_waiters.clear();
    if (stopping) wanted = false;
    if (wanted) last_keyframe_request = std::chrono::steady_clock::now();
  }
  TF_DEBUG(kComp, "%zu deferred keyframe requests: %s", asked,
           wanted ? "asking upstream" : "none of those clients is still connected");
  if (wanted) callbacks.keyframe_wanted();
}

void Server::Impl::end_handshake(const std::string &source) {
  handshaking--;
  auto it = handshaking_by_source.find(source);
  if (it != handshaking_by_source.end() && --it->second == 0) handshaking_by_source.erase(it);
}

bool Server::Impl::admit(const std::string &source) {
  std::lock_guard<std::mutex> lock(mutex);
  end_handshake(source);
  if (config.max_clients > 0 && admitted >= config.max_clients) {
    refused++;
    return false;
  }
  admitted++;
  return true;
}

void Server::Impl::on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                             const std::string &error) {
  const bool was_ready = is_admitted(was);  // reported as added, so reported as removed
  const bool was_handshaking = holds_handshake_slot(was);
  const bool was_admitted = is_admitted(was);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (sessions.erase(s->info().id) == 0) return;
    if (was_ready) ready_count--;
    if (was_handshaking) end_handshake(s->source());
    if (was_admitted) admitted--;
  }
  sessions_changed.notify_all();
  if (was_ready) {
    TF_INFO(kComp, "client %" PRIu64 " %s: removed (%s%s%s)", s->info().id,
            s->info().address.c_str(), remove_reason_name(reason), error.empty() ? "" : ": ",
            error.c_str());
    if (callbacks.client_removed) callbacks.client_removed(s->info(), reason, error);
  }
}

template <typename Update>
void Server::Impl::post_to_all(const MessagePtr &msg, Update &&update) {
  snapshot.clear();
  {
    std::lock_guard<std::mutex> lock(mutex);
    update();
    for (auto &kv : sessions) snapshot.push_back(kv.second);
  }
  // Sessions still in their handshake ignore it (deliver checks readiness on the strand).
  for (auto &s : snapshot) {
    if (s->enqueue(msg)) asio::post(s->executor(), [s] { s->drain(); });
  }
  snapshot.clear();
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
  impl->ctx = ctx.value();

  std::error_code ec;
  std::string host = config.host.empty() ? "0.0.0.0" : config.host;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(impl->io);
    auto results = resolver.resolve(host, "", asio::ip::resolver_base::passive, ec);
    if (ec || results.empty()) {
      return Error{Error::Kind::kNetwork, "cannot resolve listen address '" + host + "'",
                   ec.message()};
    }
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, config.port);
  auto &acc = impl->acceptor;
  const std::string where =
      (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
      std::to_string(config.port);
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(config.listen_backlog, ec);
  if (ec) {
    return Error{Error::Kind::kNetwork, "cannot listen on " + where + ": " + ec.message(),
                 ec.message()};
  }
  impl->bound_port = acc.local_endpoint(ec).port();
  TF_INFO(kComp, "listening on %s (port %u); at most %zu handshakes at once, %zu per address",
          where.c_str(), impl->bound_port, impl->config.max_handshakes,
          impl->config.max_handshakes_per_address);

  impl->work.emplace(impl->io.get_executor());
  impl->do_accept();
  for (unsigned i = 0; i < impl->config.io_threads; ++i) {
    impl->running_threads++;
    impl->threads.emplace_back([p = impl.get()] {
      p->io.run();
      {
        std::lock_guard<std::mutex> lock(p->mutex);
        p->running_threads--;
      }
      p->sessions_changed.notify_all();
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
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kCaps;
  msg->bytes = wire::encode_caps(caps);
  TF_DEBUG(kComp, "caps: %s", caps.c_str());
  impl_->post_to_all(msg, [&] {
    impl_->current_caps = msg;
    impl_->eos = false;
  });
}

void Server::publish_buffer(const wire::BufferMeta &meta_in, const uint8_t *data, size_t size,
                            std::shared_ptr<const void> owner) {
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kBuffer;
  msg->delta = (meta_in.flags & wire::kFlagDeltaUnit) != 0;
  wire::BufferMeta meta = meta_in;
  meta.sequence = impl_->sequence++;
  meta.send_time_ns = realtime_ns();
  constexpr size_t kPrefix = wire::kHeaderSize + wire::kBufferMetaSize;
  if (owner && size) {
    msg->bytes.resize(kPrefix);
    msg->payload = data;
    msg->payload_size = size;
    msg->payload_owner = std::move(owner);
  } else {
    msg->bytes.resize(kPrefix + size);
    if (size) std::memcpy(msg->bytes.data() + kPrefix, data, size);
  }
  wire::write_buffer_prefix(msg->bytes.data(), meta, static_cast<uint32_t>(size));
  impl_->buffers_published++;
  TF_LOGV(kComp, "publish buffer #%" PRIu64 " (%zu bytes%s)", meta.sequence, size,
          msg->delta ? ", delta" : "");
  impl_->post_to_all(msg, [&] {
    msg->caps = impl_->current_caps;  // before any session can see msg
    if (msg->delta) impl_->has_delta = true;
    impl_->eos = false;
  });
}

bool Server::publish_eos_and_flush(std::chrono::milliseconds timeout) {
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kEos;
  msg->bytes = wire::encode_eos();
  impl_->post_to_all(msg, [&] { impl_->eos = true; });
  std::unique_lock<std::mutex> lock(impl_->mutex);
  bool flushed = impl_->sessions_changed.wait_for(lock, timeout, [this] {
    return impl_->ready_count.load() == 0 || impl_->flush_aborted;
  }) && !impl_->flush_aborted;
  TF_INFO(kComp, "EOS %s", flushed ? "delivered to every client" : "flush timed out");
  return flushed;
}

void Server::abort_flush() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->flush_aborted = true;
  }
  impl_->sessions_changed.notify_all();
}

void Server::clear_abort_flush() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->flush_aborted = false;
}

void Server::stop() {
  if (!impl_) return;
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->stopping) return;
    impl_->stopping = true;
    for (auto &kv : impl_->sessions) all.push_back(kv.second);
  }
  Impl *impl = impl_.get();
  asio::post(impl->accept_strand, [impl] {
    std::error_code ec;
    impl->acceptor.close(ec);
    impl->accept_retry.cancel();
  });
  asio::post(impl->keyframe_strand, [impl] { impl->keyframe_timer.cancel(); });
  for (auto &s : all) {
    asio::post(s->executor(), [s] { s->shutdown(); });
  }
  all.clear();
  {
    std::unique_lock<std::mutex> lock(impl->mutex);
    // Grace period for the goodbye; short, so a stalled client delays stop() little.
    impl->sessions_changed.wait_for(lock, std::chrono::milliseconds(500),
                                    [&] { return impl->sessions.empty(); });
    for (auto &kv : impl->sessions) all.push_back(kv.second);
  }
  // Whoever did not take its goodbye in time is closed now.
  for (auto &s : all) {
    asio::post(s->executor(), [s] { s->close(RemoveReason::kServerStopped, ""); });
  }
  all.clear();
  impl->work.reset();
  {
    // Let in-flight handlers finish for a bounded time, then stop the loop regardless.
    std::unique_lock<std::mutex> lock(impl->mutex);
    impl->sessions_changed.wait_for(lock, std::chrono::seconds(2),
                                    [&] { return impl->running_threads.load() == 0; });
  }
  impl->io.stop();
  for (auto &t : impl->threads) t.join();
  impl->threads.clear();
  std::lock_guard<std::mutex> lock(impl->mutex);
  impl->sessions.clear();
  TF_INFO(kComp, "stopped");
}

Status Server::reload_tls(const tls::ServerTlsConfig &tls) {
  auto ctx = tls::make_server_context(tls);  // outside the lock: it reads files
  if (!ctx) return ctx.error();
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->ctx = ctx.value();
  }
  TF_INFO(kComp, "TLS context reloaded (certificate %s)", tls.cert_file.c_str());
  return Status::Ok();
}

size_t Server::num_clients() const {
  return impl_->ready_count.load();
}

ServerStats Server::stats() const {
  ServerStats s;
  s.clients = impl_->ready_count.load();
  s.clients_total = impl_->clients_total.load();
  s.handshake_failures = impl_->handshake_failures.load();
  s.refused = impl_->refused.load();
  s.buffers_published = impl_->buffers_published.load();
  s.bytes_sent = impl_->bytes_sent.load();
  s.frames_dropped = impl_->frames_dropped.load();
  return s;
}

std::vector<ClientStats> Server::client_stats() const {
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    for (auto &kv : impl_->sessions) all.push_back(kv.second);
  }
  std::vector<ClientStats> out;
  for (auto &s : all) {
    if (s->added()) out.push_back(s->stats());
  }
  return out;
}

std::optional<ClientStats> Server::client_stats(uint64_t id) const {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return std::nullopt;
    s = it->second;
  }
  if (!s->added()) return std::nullopt;
  return s->stats();
}

}  // namespace tlsframe
