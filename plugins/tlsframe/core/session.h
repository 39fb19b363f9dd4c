// One client connection of the fan-out server: its strand, socket, timers,
// TLS record layer (TlsRecord), send queue (ClientQueue), a read path for
// client messages, and its lifecycle as one Phase. Internal to core/: the
// server (server.cpp) owns sessions through SessionHost.
//
// Threads: everything runs on the session's strand except enqueue() (the
// publishing thread), added() and stats() (any thread).
#pragma once

#include <array>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/authorization.h"
#include "core/browser_link.h"
#include "core/client_queue.h"
#include "core/guarded.h"
#include "core/message.h"
#include "core/rate_limiter.h"
#include "core/rendition_policy.h"
#include "core/server.h"
#include "core/tls_record.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"

namespace tlsframe {

// A session's lifecycle. Session::enter() is the one place that changes it
// and refuses a transition not listed there.
//
//   kAccepted ─► kAwaitingHello ─► kHandshaking ─┬─► kSelecting ─┬─────────────────► kStreaming ─► kLeaving
//                                                │              └─► kAuthorizing ─┴──────────────► kLeaving
//                                                │    (kSelecting and kAuthorizing may also go to kLeaving)
//                                                └─► kRefusing
//   any ─► kClosed
enum class Phase {
  kAccepted,       // registered by the listener; start() has not run (holds a handshake slot)
  kAwaitingHello,  // started; no byte of the TLS ClientHello yet (hello timeout)
  kHandshaking,    // the ClientHello is arriving (handshake timeout from the accept)
  kRefusing,       // handshake done, not admitted (max-clients): the ERROR goodbye is queued
  kSelecting,      // admitted; choosing its stream: a v2 client's HELLO is awaited (LIST_STREAMS
                   // answered meanwhile; handshake timeout from the accept); a v1 client passes
                   // through at once to the default stream
  kAuthorizing,    // admitted, its stream chosen and authorized-clients passed: the
                   // application's accept-client answer is awaited (no thread waits; the
                   // answer is posted to the strand; handshake timeout from the request)
  kStreaming,      // joined its stream and reported added: gets the stream
  kLeaving,        // admitted; the ERROR goodbye is queued (refusal, protocol error, stopping)
  kClosed,         // socket closed, reported to the server
};
const char *phase_name(Phase p);
bool holds_handshake_slot(Phase p);  // counted in the listener's handshakes in progress
bool holds_client_slot(Phase p);     // counted against max_clients

// What the server tells each session (copied from ServerConfig at start).
struct SessionConfig {
  std::chrono::nanoseconds handshake_timeout{0};  // from the accept; 0 = none
  std::chrono::nanoseconds hello_timeout{0};      // until the first byte; 0 = none
  std::chrono::nanoseconds client_timeout{0};     // no write progress this long drops; 0 = never
                                                   // (also the dead-peer detection's, keepalive.h)
  QueueLimits queue;
  uint32_t max_clients = 0;  // only for the refusal's log line
};

// Server-wide counters, read by stats() from any thread; sessions and the
// server add to them without a lock.
struct ServerCounters {
  std::atomic<uint64_t> clients{0};  // connected now (kStreaming or kLeaving)
  std::atomic<uint64_t> clients_total{0}, handshake_failures{0}, refused{0}, buffers_published{0},
      bytes_sent{0}, frames_dropped{0};
};

class Session;
class Stream;
struct StreamCounters;

// What a session needs from its server. Called on the session's strand, with
// no session lock held.
class SessionHost {
 public:
  // The handshake completed: true takes a client slot, false refuses (max-clients).
  virtual bool admit(Session &s) = 0;
  // The stream served under `name` ("" = the default stream), or nullptr
  // with *names (when given) filled with the names there are.
  virtual std::shared_ptr<Stream> find_stream(const std::string &name,
                                              std::vector<std::string> *names) = 0;
  // Every stream served, for a STREAM_LIST.
  virtual std::vector<wire::StreamSummary> list_streams() = 0;
  // Joined its stream (now kStreaming): count it and report it added.
  virtual void on_ready(const std::shared_ptr<Session> &s) = 0;
  // The session left phase `was` for kClosed.
  virtual void on_closed(const std::shared_ptr<Session> &s, Phase was, RemoveReason reason,
                         const std::string &error) = 0;
  virtual void on_handshake_failed(const Session &s, const Error &e) = 0;
  // The session now gets `to` instead of `from` (renditions of one stream):
  // move its count and report the change.
  virtual void on_rendition_switched(const std::shared_ptr<Session> &s, Stream &from, Stream &to,
                                     const RenditionChange &change) = 0;
  // The TLS context new handshakes use now (reloads replace it).
  virtual tls::ContextPtr current_context() = 0;
  // Held while a callback from another thread posts to a session: keeps the
  // I/O context alive meanwhile (nullptr once the server is gone).
  virtual std::weak_ptr<void> lifetime() = 0;

 protected:
  ~SessionHost() = default;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // host and counters outlive every session (the server joins its I/O threads first).
  Session(SessionHost *host, const SessionConfig &config, ServerCounters *counters,
          asio::ip::tcp::socket socket, uint64_t id, std::string address, std::string source,
          const tls::ContextPtr &ctx);

  asio::any_io_executor executor() { return socket_.get_executor(); }
  const ClientInfo &info() const { return info_; }  // subject is set before the session is ready
  const std::string &source() const { return source_; }
  bool added() const { return counters_.added.load(); }  // any thread: reported as added
  // Its stream once it chose one (strand; set before it is added, then constant).
  const std::shared_ptr<Stream> &stream() const { return stream_; }
  // The stream it is reported to (added, removed, rendition changes): the
  // rendition it joined through, which stream() may have left since (strand).
  const std::shared_ptr<Stream> &home() const { return home_ ? home_ : stream_; }

  // Publishing thread: hands msg to the session. Returns true when the caller
  // must post drain() to the session's strand (none is posted yet), so a
  // session behind by k messages costs one post, not k. The inbox holds at
  // most inbox_limit() buffers: beyond that the oldest is dropped and
  // the session resyncs on a keyframe, as for its own queue.
  // `from`: the stream that published it (a session subscribed to two
  // renditions during a switch tells them apart; nullptr = its own).
  bool enqueue(const MessagePtr &msg, const Stream *from = nullptr);

  // All members below run on the session's strand.
  void start();                         // starts the handshake (kAccepted -> kAwaitingHello)
  void drain();                         // delivers what enqueue() collected
  void deliver(const MessagePtr &msg);  // one stream message, through the queue policy
  // A buffer shed for time-max (ClientQueue::Decision::late): last error and a log line.
  void note_late(const ClientQueue::Decision &d);
  // A joiner's cached GOP (sync-method latest-keyframe), queued whole: see ClientQueue::offer_burst.
  void deliver_cached_gop(const std::vector<MessagePtr> &gop);
  void close(RemoveReason reason, const std::string &error);
  // Server stopping: an admitted client gets ERROR(shutting down) after the
  // message being written, if any; stop() closes whoever has not taken it
  // within its grace period (a stalled client).
  void shutdown();

  ClientStats stats() const;  // any thread

  // The listener's TLS context was replaced (ctx, with new CRLs): a client
  // past its handshake whose certificate ctx revokes gets ERROR REVOKED and
  // is closed within kRevokedCloseWithin. Others are untouched.
  void check_revocation(const tls::ContextPtr &ctx);

 private:
  // Buffers an inbox holds before dropping: well above the session's own
  // queue, so a briefly busy I/O thread does not cost a healthy client
  // frames; the messages are shared, so this bounds distinct frames held.
  size_t inbox_limit() const;

  bool closed() const { return phase_ == Phase::kClosed; }
  bool in_handshake() const {
    return phase_ == Phase::kAwaitingHello || phase_ == Phase::kHandshaking;
  }
  // The one place the phase changes.
  void enter(Phase next);

  // (Re)arms the handshake deadline `after` from now; the wait it replaces ends aborted.
  void arm_handshake_timer(std::chrono::nanoseconds after, const char *what);
  // TCP keepalive and TCP_USER_TIMEOUT from config_.client_timeout
  // (core/keepalive.h), so a peer gone without a FIN fails the pending read
  // with ETIMEDOUT about that long after its last packet.
  void enable_dead_peer_detection();
  // A socket error that says the peer stopped acknowledging (keepalive or
  // TCP_USER_TIMEOUT gave up: ETIMEDOUT, EHOSTUNREACH, ENETUNREACH): closes
  // with kTimeout and returns true.
  bool close_if_peer_vanished(std::error_code ec);
  // TCP_USER_TIMEOUT on while the client keeps up, off while it is
  // backlogged (core/keepalive.h says why); a setsockopt only on a change.
  void keep_user_timeout(bool on);
  // The first bytes of the ClientHello arrived: from now on only the
  // handshake timeout (counted from the accept) applies.
  void on_hello_started();
  // One step of the server handshake: run OpenSSL on what has arrived, send
  // what it produced, then finish or read more.
  void handshake_step();
  void on_handshake(std::error_code ec);
  void fail_handshake(const Error &e);
  // After a failed handshake's alert: FIN, then discard what the client
  // still sends until it closes (bounded), then fail_handshake().
  void linger_then_fail(const Error &e);
  void discard_until_closed(const Error &e);

  // The read path: socket -> TLS records -> plaintext -> wire::MessageReader
  // -> on_client_message(). It also detects the client's close.
  void start_read();
  void on_read(std::error_code ec, size_t n);
  void on_plaintext(const uint8_t *data, size_t size);
  // One whole v2 client message (header included): HELLO, LIST_STREAMS or
  // KEYFRAME_REQUEST, each counted against the rate limit.
  void on_client_message(const std::vector<uint8_t> &message);
  // ERROR PROTOCOL, then close.
  void protocol_error(const std::string &why);

  // The browser front (ALPN http/1.1; core/session_browser.cpp): its request,
  // then a one-shot response, or the stream as WebSocket or multipart JPEG.
  void start_browser();
  void on_browser_bytes(const uint8_t *data, size_t size);
  void on_http_request();
  // Authorized and joined: sends the held 101 (or multipart 200) and switches the framing.
  void start_browser_stream();
  void on_ws_frame(const ws::Frame &frame);
  // Sends an already framed last message (an HTTP response, a close frame), then close_notify.
  void send_browser_final(std::vector<uint8_t> bytes, RemoveReason reason);

  // Admitted after the handshake: a v1 client joins the default stream; a v2
  // client waits for its HELLO (until the handshake deadline).
  void on_admitted();
  // Subscribes to the stream named `name` ("" = default) and sends what a
  // joiner gets first (WELCOME for v2, the caps); ERROR NO_SUCH_STREAM if
  // there is none.
  void join(const std::string &name);
  // Authorization of a client that named stream `name`: true when it may
  // join now (or there is no such stream: join() answers that). False when
  // it was refused (ERROR FORBIDDEN), or the application is asked
  // (kAuthorizing; its answer comes through on_accept_decision()).
  bool authorized_for(const std::string &name);
  // The identity of the client's certificate (read once, on the strand).
  const authz::Identity &identity();
  // ERROR FORBIDDEN (reported as removed from `stream`, which it never joined), then close.
  void refuse_forbidden(const std::shared_ptr<Stream> &stream, const std::string &why);
  // The application's answer to request `token` (posted to the strand).
  void on_accept_decision(uint64_t token, bool accept);
  // The handshake used a context that was replaced since: true (and ERROR
  // REVOKED sent) when the current one revokes the client's certificate.
  bool revoked_since_handshake_began();

  // A message for this session alone (WELCOME, STREAM_LIST), queued in order.
  void send_control(const MessagePtr &msg);

  // Queue one last ERROR message (after what is being written), then close.
  void send_final(wire::ErrorCode code, const std::string &text, RemoveReason reason);
  // After the last message (EOS, ERROR): a TLS close_notify, then close.
  void finish(RemoveReason reason);
  // Something was queued: publish the depth and start a write if none is in flight.
  void queued();
  void do_write();
  // Encrypts the next part of msg (at most kEncryptChunk plaintext bytes,
  // whole records) and writes it: each record straight to the socket while
  // the kernel takes it (TlsRecord::encrypt_to), the rest with an async
  // write; once all of msg is written, on_write(). A part, not the whole
  // message, so a client that stops reading holds at most one part in
  // memory, not a copy of a large frame. Records OpenSSL produced earlier (a
  // KeyUpdate answer) are already in the output and go first, as they must.
  void write_part(const MessagePtr &msg);
  // A part is on the wire (or failed): the next part, or on_write().
  void on_part_written(std::error_code ec, const MessagePtr &msg);
  // The write-progress deadline: one timer wait per timeout period, not one
  // per message. On expiry, a write that made no progress for the whole
  // timeout drops the client; otherwise the timer re-arms for what is left;
  // an idle session lets the timer lapse until its next write.
  void arm_progress_timer(std::chrono::nanoseconds after);
  // Writes records OpenSSL produced outside a message write, when no write
  // is in flight; otherwise they go out ahead of the next message.
  void flush_records();
  void on_write(std::error_code ec, const MessagePtr &msg);

  void set_last_error(const char *text);
  void count_drop();
  void publish_depth();

  SessionHost *host_;
  const SessionConfig config_;
  ServerCounters *server_counters_;
  const std::string source_;  // source_key() of the peer: per-address handshake accounting
  ClientInfo info_;           // subject set on the strand before kStreaming, then constant

  // Strand-only state:
  asio::ip::tcp::socket socket_;
  asio::steady_timer timer_;      // handshake deadline, then write-progress deadline
  TlsRecord tls_;                 // OpenSSL over memory: records in, records out
  std::vector<uint8_t> wire_;     // TLS records being written to the socket
  bool writing_records_ = false;  // wire_ holds a flush_records() write, not a message
  Phase phase_ = Phase::kAccepted;
  asio::steady_timer select_timer_;  // kSelecting: the HELLO deadline
  wire::Version version_ = wire::Version::kV1;  // by ALPN, at the end of the handshake
  std::shared_ptr<Stream> stream_;              // chosen in join()
  StreamCounters *stream_counters_ = nullptr;   // its counters (set before added(), then constant)
  std::optional<RateLimiter> limiter_;          // v2: client messages
  std::chrono::steady_clock::time_point accepted_at_;    // start of the handshake deadline
  RemoveReason final_reason_ = RemoveReason::kClosed;    // reported once the goodbye is written
  ClientQueue queue_;                                    // what to send, and the policy deciding it
  std::chrono::steady_clock::time_point last_progress_;  // write start, or its latest partial write
  size_t write_offset_ = 0;            // bytes of the message being written already encrypted
  bool progress_timer_armed_ = false;  // a write-progress wait is pending
  bool dead_peer_detection_ = false;  // keepalive and TCP_USER_TIMEOUT applied
  bool user_timeout_on_ = false;      // TCP_USER_TIMEOUT set now (keep_user_timeout)
  // The last write of a frame with more queued behind it (never: the epoch).
  std::chrono::steady_clock::time_point backlogged_at_{};
  std::chrono::steady_clock::time_point ready_at_;  // entered kStreaming
  std::array<uint8_t, 256> read_buf_{};             // ciphertext from the socket
  std::array<uint8_t, 256> plain_buf_{};            // plaintext from TlsRecord::read()
  // Which client messages this connection reads: none for version 1 (any
  // byte is a protocol error); v2 (ALPN tlsframe/2) reads them through reader_.
  // A browser (ALPN http/1.1) sends an HTTP request, then WebSocket frames (browser_).
  enum class ClientMessages { kNone, kV2, kBrowser };
  ClientMessages client_messages_ = ClientMessages::kNone;
  wire::MessageReader reader_;       // client messages, as a v2 server reads them
  // A message and the stream that published it (nullptr = the session's own).
  struct Inbound {
    MessagePtr msg;
    const Stream *from = nullptr;
  };
  std::deque<Inbound> draining_;  // the batch drain() is delivering
  std::unique_ptr<browser::Link> browser_;  // a browser connection (ALPN http/1.1), else null

  // Renditions (core/session_rendition.cpp), strand only. The session
  // subscribes to the rendition it gets (stream_) and, during a switch, to
  // the target too; the switch completes at the target's first keyframe.
  // The rendition to start on among entry's group, for HELLO's `rendition`.
  std::shared_ptr<Stream> first_rendition(const std::shared_ptr<Stream> &entry);
  // After the join: WELCOME's bytes, and the automatic choice started.
  std::vector<uint8_t> welcome_bytes(uint32_t keyframe_interval_ms) const;
  void start_renditions();
  // A stream with renditions: the kernel holds at most kRenditionNotsentLowat
  // unsent bytes (TCP_NOTSENT_LOWAT); the rest waits in the queue, where
  // time-max, the policy and a switch see it and can drop it.
  void bound_kernel_backlog();
  void on_rendition_request(std::string_view asked);  // RENDITION_REQUEST
  // Subscribes to target and asks it for a keyframe (target == stream_: cancels a switch).
  void switch_rendition(const std::shared_ptr<Stream> &target, bool up, std::string reason);
  // A message from a stream other than stream_: the target's first keyframe
  // completes the switch; anything else from it (or from a rendition left) is not sent.
  void deliver_from_other(const MessagePtr &msg, const Stream *from);
  void finish_switch(const MessagePtr &keyframe);
  void leave_renditions();  // closing: the target is unsubscribed, the timer stopped
  void arm_rendition_timer();
  void on_rendition_timer();
  void fill_rendition_stats(ClientStats &s) const;  // any thread

  std::shared_ptr<Stream> home_;  // see home(); set in join()
  struct Renditions {
    std::string asked;                       // HELLO's `rendition` ("" = not stated)
    bool automatic = true;                   // the server chooses
    std::shared_ptr<Stream> target;          // a switch waiting for the target's keyframe
    bool target_up = false;
    std::string target_reason;
    RenditionPolicy policy;
    std::optional<asio::steady_timer> timer;  // kRenditionSampleInterval, while automatic
    std::chrono::steady_clock::time_point origin;  // the policy's time zero
  } renditions_;
  // Read by stats() from any thread.
  struct RenditionStats {
    std::string rendition, reason;
    bool automatic = true;
    uint64_t up = 0, down = 0, estimate = 0;
  };
  Guarded<RenditionStats> rendition_stats_;

  // Authorization (strand only):
  const tls::ContextPtr ctx_;                // the TLS context this session was made from
  std::optional<authz::Identity> identity_;  // its certificate's identity, once read
  std::shared_ptr<Stream> authorized_;       // the stream it may join (authorization passed)
  std::shared_ptr<Stream> authorizing_;      // kAuthorizing: the stream the application decides on
  std::string requested_name_;               // kAuthorizing: the name it asked for
  uint64_t decision_token_ = 0;              // the accept-client request awaited (later ones win)

  // Read by stats() from any thread, written on the strand:
  struct Counters {
    std::atomic<bool> added{false};  // entered kStreaming: reported by client_added (never reset)
    std::atomic<uint64_t> frames_sent{0}, frames_dropped{0}, bytes_sent{0}, depth_buffers{0},
        depth_bytes{0};
  } counters_;
  Guarded<std::string> last_error_;  // latest problem, set on the strand, read by stats()

  // Filled by the publishing thread, emptied by drain().
  struct Inbox {
    std::deque<Inbound> messages;  // published, not yet taken by drain()
    size_t buffers = 0;               // buffer messages in messages
    bool posted = false;              // a drain() is posted and has not taken the inbox yet
    bool gap = false;                 // buffers were dropped from it since the last drain
  };
  Guarded<Inbox> inbox_;
};

}  // namespace tlsframe
