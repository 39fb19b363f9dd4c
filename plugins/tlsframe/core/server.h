// Fan-out server: one stream served over TLS, sent to every client that
// asks for it. publish_*() only posts work and never touches a socket, so the
// caller (a GStreamer streaming thread) never waits on a client.
// Version 1 clients (no ALPN) get the default stream (stream_name ""); version
// 2 clients (ALPN "tlsframe/2") name theirs in a HELLO. Servers in one
// process with the same host and fixed port share one listener, TLS context
// and I/O thread pool (core/hub.h); their listener settings must agree.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/authorization.h"
#include "core/message.h"
#include "core/result.h"
#include "core/tls_context.h"
#include "core/wire_format.h"

namespace tlsframe {

// Defaults, the one source for the element's DEFAULT_* values.
// Handshake deadline: connections that never finish are dropped.
inline constexpr std::chrono::seconds kDefaultHandshakeTimeout{10};
// A write making no progress this long drops the client: a client that
// stops reading holds its queue and kernel buffers for at most this long.
inline constexpr std::chrono::seconds kDefaultClientTimeout{5};
// SO_SNDBUF per client (Linux doubles it: 512 KiB of kernel memory). An
// autotuned buffer grew to ~3.8 MB for a client that never reads; 512 KiB
// still holds 3 frames of 720p JPEG (~150 KB) and allows ~40 Mbit/s at 100 ms RTT.
inline constexpr int kDefaultSendBufferSize = 256 * 1024;
// Connections in their TLS handshake at once, in all (clamped below the
// open-file limit at start).
inline constexpr size_t kDefaultMaxHandshakes = 4096;
// ... and from one source address (an IPv6 /64 counts as one address). A
// handshake takes a few milliseconds, so 32 at once is more than any host or
// NAT starts legitimately, while an idle flood from one address takes at most
// 32 slots, each for at most the hello timeout.
inline constexpr size_t kDefaultMaxHandshakesPerAddress = 32;
// Time for the first byte of a ClientHello: a connection that sends nothing
// is closed this soon; handshake_timeout still bounds the whole handshake.
inline constexpr std::chrono::seconds kDefaultHelloTimeout{3};
// Keyframe requests for joiners: at most one per interval; one asked within
// the interval is sent at its end if a client that asked is still connected.
inline constexpr std::chrono::seconds kDefaultKeyframeRequestInterval{1};
// A client revoked while connected is closed this long after the reload at
// the latest, even if it does not read its ERROR REVOKED.
inline constexpr std::chrono::milliseconds kRevokedCloseWithin{500};
// Bound of the GOP cache (sync_method kLatestKeyframe): a 10 s GOP up to
// about 13 Mbit/s. Only a stream at kLatestKeyframe keeps one, and its
// buffers are shared with the client queues, not copied.
inline constexpr uint64_t kDefaultGopCacheBytesMax = 16ull << 20;

// Bound on a client's queued time (ServerConfig::queue_max_time): a live
// viewer would rather lose frames than see them this late. At 30 fps, 7
// frames; with the kernel's send buffer on top, under the 300 ms p99 the
// overload benchmark aims at on loopback.
inline constexpr std::chrono::milliseconds kDefaultQueueTimeMax{250};

// Where a new client starts on a stream with delta units: multihandlesink's
// sync-method names and values, for the ones tlsframe supports. `latest`
// (0, start on whatever buffer comes next) and the burst modes (3-5) are not
// offered: a client always starts on a keyframe (docs/ELEMENTS.md).
enum class SyncMethod {
  kNextKeyframe = 1,    // wait for the next keyframe (asking upstream for one)
  kLatestKeyframe = 2,  // the cached buffers from the latest keyframe on at once, then live
};
const char *sync_method_name(SyncMethod m);
// Today's behaviour, and what a live encoder that honours force-key-unit wants.
inline constexpr SyncMethod kDefaultSyncMethod = SyncMethod::kNextKeyframe;

struct ServerConfig {
  // The stream served: "" = the default stream (what a v1 client gets), else
  // a wire::valid_stream_name(). Unique per host:port.
  std::string stream_name;
  // This sink's encoding of stream_name when the stream has several
  // (docs/PROTOCOL.md 8.12): "" = the stream has one; else a
  // wire::valid_rendition_name(), unique within the stream. Servers with
  // the same host, port and stream_name and different renditions form one
  // stream; they must agree on authorized_clients.
  std::string rendition;
  std::string host = "0.0.0.0";  // address or name to listen on
  uint16_t port = 9999;          // 0 = any free port (see Server::port())
  tls::ServerTlsConfig tls;
  uint32_t max_clients = 0;  // 0 = unlimited; surplus clients (after their handshake) get an ERROR
                             // message and are closed
  std::chrono::nanoseconds handshake_timeout = kDefaultHandshakeTimeout;  // 0 = none
  std::chrono::nanoseconds hello_timeout = kDefaultHelloTimeout;  // until the first byte; 0 = none
  // A write making no progress (no byte taken by the kernel) this long drops the client; 0 = never.
  std::chrono::nanoseconds client_timeout = kDefaultClientTimeout;
  uint32_t queue_max_buffers = 32;         // per-client queue limit in buffers (min 1)
  uint64_t queue_max_bytes = 32ull << 20;  // per-client queue limit in bytes (min 1)
  // Per-client bound on queued time: a buffer published longer ago than this
  // is not sent; the client sheds its oldest buffers, on a delta-unit stream
  // up to the next keyframe (core/client_queue.h). 0 = no bound.
  std::chrono::nanoseconds queue_max_time = kDefaultQueueTimeMax;
  unsigned io_threads = 1;                 // I/O threads (min 1)
  int listen_backlog = 1024;
  // SO_SNDBUF per client in bytes: caps what the kernel holds for a client
  // beyond its queue, and so a slow client's latency. 0 = kernel default (autotuned).
  int send_buffer_size = kDefaultSendBufferSize;
  // Connections in their TLS handshake (in all, and per source address, 0 =
  // no per-address limit); more are closed at once, before any TLS work.
  // max_handshakes is clamped to half the open-file soft limit at start.
  size_t max_handshakes = kDefaultMaxHandshakes;
  size_t max_handshakes_per_address = kDefaultMaxHandshakesPerAddress;
  // Least time between two keyframe_wanted calls (0 = no rate limit); sent
  // to v2 clients in WELCOME (keyframe-interval-ms). Per stream.
  std::chrono::nanoseconds keyframe_request_interval = kDefaultKeyframeRequestInterval;
  // Where joiners start (per stream); kLatestKeyframe keeps a GOP cache of at
  // most gop_cache_bytes_max wire bytes (0 = none: joiners wait as at
  // kNextKeyframe). Over the bound the cache is dropped until the next keyframe.
  SyncMethod sync_method = kDefaultSyncMethod;
  uint64_t gop_cache_bytes_max = kDefaultGopCacheBytesMax;
  // Who may watch this stream (authz::parse_rule forms: "CN=...", "DNS:...",
  // "URI:...", "email:...", "sha256:..."); empty = any client the CA accepts.
  // Checked once the client named its stream. Non-empty needs
  // tls.require_client_cert. Per stream.
  std::vector<std::string> authorized_clients;
};

// Why a client went away (values shared with the element's enum).
enum class RemoveReason {
  kClosed = 0,         // the client closed the connection
  kError = 1,          // read/write/TLS error
  kTimeout = 2,        // no progress for client_timeout, or the peer vanished (no TCP ACK)
  kProtocol = 3,       // the client sent application data (clients only listen)
  kServerStopped = 4,  // the server stopped
  kEos = 5,            // end of stream delivered, connection closed
  kForbidden = 6,      // refused by authorized-clients or accept_client (ERROR FORBIDDEN)
  kRevoked = 7,        // its certificate was revoked by a reloaded CRL (ERROR REVOKED)
};
const char *remove_reason_name(RemoveReason r);

struct ClientInfo {
  uint64_t id = 0;      // unique per server, from 1
  std::string address;  // "ip:port" or "[ipv6]:port"
  std::string subject;  // client certificate subject under mutual TLS, else ""
};

struct ClientStats {
  ClientInfo info;
  uint64_t frames_sent = 0;      // buffers fully written
  uint64_t frames_dropped = 0;   // buffers skipped for this client (overflow, keyframe wait)
  uint64_t bytes_sent = 0;       // wire bytes fully written
  uint64_t queue_buffers = 0;    // buffers queued now (including the one being written)
  uint64_t queue_bytes = 0;      // bytes queued now
  double connected_seconds = 0;  // since the handshake completed
  std::string last_error;  // latest problem on this connection (e.g. queue overflow), "" if none
  // Renditions (a stream with several; docs/PROTOCOL.md 8.12):
  std::string rendition;         // the rendition it gets now ("" = the stream has one)
  bool rendition_auto = true;    // the server chooses (false: the client named one)
  uint64_t switches_up = 0;      // switches to a higher-rate rendition
  uint64_t switches_down = 0;    // ... to a lower-rate one
  std::string rendition_reason;  // why the last switch happened ("" = none yet)
  uint64_t estimated_rate = 0;   // the connection's estimated capacity, bits/s (0 = unknown)
};

// A client's rendition changed (ServerCallbacks::rendition_changed).
struct RenditionChange {
  std::string from, to;  // rendition names
  bool up = false;       // to a higher-rate rendition
  std::string reason;    // "requested", "auto: ...": as in RENDITION's `reason`
};

// Per stream, except handshake_failures and refused (the listener's, shared
// by the streams on its port).
struct ServerStats {
  uint64_t clients = 0;             // clients of this stream now (handshake done, stream joined)
  uint64_t clients_total = 0;       // clients that joined this stream, ever
  uint64_t handshake_failures = 0;  // connections that failed or timed out in the handshake
  uint64_t refused = 0;  // connections refused (max-clients, or too many handshakes in progress
                         // in all or from the same address)
  uint64_t buffers_published = 0;  // buffers given to publish_buffer()
  uint64_t bytes_sent = 0;         // wire bytes written to all clients
  uint64_t frames_dropped = 0;     // sum over clients of skipped buffers
};

// What accept_client is asked about: a client that completed its handshake,
// named its stream and passed authorized_clients.
struct AcceptRequest {
  uint64_t id = 0;          // the client's id (as in ClientInfo)
  std::string address;      // "ip:port" or "[ipv6]:port"
  std::string stream_name;  // the stream it asked for ("" = the default stream)
  authz::Identity identity;  // its certificate (identity.present == false: none)
};
// The answer to an AcceptRequest: true accepts. Call it once, from any thread.
using AcceptDecision = std::function<void(bool accept)>;

// Called on an I/O thread with no server lock held.
struct ServerCallbacks {
  std::function<void(const ClientInfo &)> client_added;
  std::function<void(const ClientInfo &, RemoveReason, const std::string &error)> client_removed;
  // A client joined a stream that has delta units, skipped one, or sent a
  // KEYFRAME_REQUEST. Merged and rate-limited: see
  // ServerConfig::keyframe_request_interval.
  std::function<void()> keyframe_wanted;
  std::function<void(const std::string &address, const Error &)> handshake_failed;
  // A client switched renditions (at the target's keyframe). Called on the
  // sink of the rendition it joined first.
  std::function<void(const ClientInfo &, const RenditionChange &)> rendition_changed;
  // The application's decision on a client (may be empty). Must not block:
  // returns false when there is nobody to ask (the client is accepted at
  // once), true when `decide` will be called with the answer. Until then the
  // client waits (Phase::kAuthorizing) and no thread waits for it; no answer
  // within handshake_timeout refuses it (ERROR FORBIDDEN).
  std::function<bool(const AcceptRequest &, AcceptDecision decide)> accept_client;
};

class Server {
 public:
  // Loads certificates, binds and listens, starts the I/O threads; or joins
  // the listener already serving host:port in this process (fixed ports only).
  static Result<std::unique_ptr<Server>> start(const ServerConfig &config,
                                               ServerCallbacks callbacks);
  ~Server();  // stop()
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  uint16_t port() const;          // the bound port
  size_t max_handshakes() const;  // the effective limit (after clamping to the open-file limit)

  // New caps (and stream headers inside the caps string). Sent to every client
  // before its next buffer, and to every new client before its first.
  void publish_caps(const std::string &caps);
  // The rate this stream's encoder was set to, in bits/s (0: none): orders a
  // stream's renditions (Stream::ladder_rate). Any thread.
  void declare_rate(uint64_t bps);
  // One buffer; serialized once and shared by all client queues. With an
  // owner, data is not copied: owner keeps it alive and unchanged until the
  // last client has written it (released on any thread).
  void publish_buffer(const wire::BufferMeta &meta, const uint8_t *data, size_t size,
                      std::shared_ptr<const void> owner = nullptr);
  // End of stream: sent to every client, then waits until each has written it
  // and closed, or the timeout passed. Returns true if all were flushed.
  bool publish_eos_and_flush(std::chrono::milliseconds timeout);
  // Makes a publish_eos_and_flush() waiting now, or later until
  // clear_abort_flush(), return false at once (GstBaseSink unlock).
  void abort_flush();
  void clear_abort_flush();
  // Closes every connection of this stream; the last server of a listener
  // also closes it and joins the I/O threads. Idempotent.
  void stop();
  // New certificate, key, client CAs and CRLs for handshakes that start from
  // now on (on every stream of the listener); connected clients keep their
  // sessions, except those whose certificate the new CRLs revoke: they get
  // ERROR REVOKED and are closed (within kRevokedCloseWithin). On error the
  // current context stays.
  Status reload_tls(const tls::ServerTlsConfig &tls);

  size_t num_clients() const;
  ServerStats stats() const;
  std::vector<ClientStats> client_stats() const;
  std::optional<ClientStats> client_stats(uint64_t id) const;

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tlsframe
