// Receiver: the client side. Connects, handshakes, verifies the server, then
// reads and decodes messages on its own I/O thread into a small bounded queue.
// The consumer (a GstPushSrc streaming thread) blocks in next() with a
// deadline; cancel() wakes it at once (GstBaseSrc unlock).
//
// Protocol version: the receiver always offers ALPN "tlsframe/2". When the
// server selects it, the receiver sends HELLO for config.stream_name and
// expects WELCOME (kept, see welcome()) before the stream; STREAM_LIST
// answers are kept too (stream_list()), so next() yields the same sequence
// on both versions: CAPS, BUFFERs, then EOS or ERROR. When the server selects
// nothing it is a version 1 server: the default stream works, a named stream
// is a kSettings error. Small client messages (request_keyframe(),
// request_stream_list()) may be sent from any thread while next() runs: they
// are posted to the I/O thread and never block the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "core/tls_context.h"
#include "core/wire_format.h"

namespace tlsframe {

// Default read timeout: no data at all for this long means the server is gone
// (a live stream sends every frame interval; reading paused by backpressure
// does not count). Long enough for a server that pauses briefly, short
// enough that a dead or stalling server does not hold a client forever.
inline constexpr std::chrono::seconds kDefaultReadTimeout{10};

struct ReceiverConfig {
  std::string host = "localhost";  // server name or address to connect to
  uint16_t port = 9999;
  std::string server_name;  // name checked against the certificate and sent as SNI ("" = host)
  tls::ClientTlsConfig tls;
  size_t max_payload = wire::kDefaultMaxPayload;  // larger messages are a protocol error
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(10);  // connect + handshake
  std::chrono::nanoseconds read_timeout =
      kDefaultReadTimeout;  // no data this long: error; 0 = none
  size_t max_queued = 4;    // decoded messages held before reading pauses (backpressure)
  // Stream asked for in HELLO ("" = the server's default stream); must be ""
  // or wire::valid_stream_name(). A version 1 server only has the default.
  std::string stream_name;
  // Rendition asked for in HELLO (docs/PROTOCOL.md 8.12): "" or
  // wire::kRenditionAuto = the server's choice, else a
  // wire::valid_rendition_name(). Ignored by streams without renditions.
  std::string rendition;
};

// The server's WELCOME (version 2), or what stands for it on version 1.
struct Welcome {
  int version = 1;                    // protocol version of the connection: 1 or 2
  std::string stream;                 // the stream served ("" = unnamed default)
  std::string server;                 // the server's name and version (v2 only)
  uint32_t keyframe_interval_ms = 0;  // the server's merge interval; 0 = not stated
  std::string rendition;              // the rendition served first ("" = the stream has none)
  std::vector<std::string> renditions;  // every rendition, highest rate first (empty: none)
};

// One entry of a STREAM_LIST.
struct StreamInfo {
  std::string name;  // "" = an unnamed default stream
  std::string caps;  // short caps summary, for people ("" = no caps yet)
  uint32_t viewers = 0;
};

// Outcome of a request to send a small client message.
enum class SendStatus {
  kQueued,        // handed to the I/O thread for sending
  kRateLimited,   // not sent: an earlier request is still in flight (client-side limit)
  kNotSupported,  // not sent: the connection is version 1 (or the server refused v2 requests)
  kNotReady,      // not sent: no WELCOME yet, or the connection is closed
};

// Shortest interval between two KEYFRAME_REQUESTs while no keyframe arrived,
// when the server's WELCOME states no keyframe-interval-ms.
inline constexpr std::chrono::milliseconds kClientKeyframeRequestInterval{1000};
// Small client messages queued on the I/O thread at most; more are refused
// (kRateLimited), so a server that stops reading costs bounded memory.
inline constexpr size_t kMaxQueuedRequests = 8;

// One received message. The buffer's bytes live in `storage`, which the
// consumer may keep (e.g. wrapped into a GstBuffer) instead of copying.
struct Received {
  wire::MessageType type = wire::MessageType::kCaps;
  std::string caps;                               // kCaps
  wire::BufferMeta meta;                          // kBuffer
  std::shared_ptr<std::vector<uint8_t>> storage;  // kBuffer: the whole message
  size_t data_offset = 0;                         // kBuffer: where the buffer's bytes start
  size_t data_size = 0;                           // kBuffer
  uint16_t error_code = 0;                        // kError
  std::string error_text;                         // kError
  std::string rendition;                          // kRendition: the rendition from the next CAPS on
  std::string reason;                             // kRendition: why ("" = not stated)
};

enum class NextStatus {
  kMessage,    // out holds a message (EOS and ERROR included)
  kTimeout,    // the deadline passed with nothing to return
  kCancelled,  // cancel() was called
  kError,      // the connection failed; error says why (final)
};

// Where a stream is: a server and a stream name, as a tlsframe URI
// (tlsframe://HOST[:PORT][/NAME], IPv6 as [addr]) or the tool's HOST[:PORT][/NAME].
struct StreamAddress {
  std::string host;      // name or address; IPv6 without brackets
  uint16_t port = 9999;  // kDefaultPort when the text has none
  std::string stream;    // "" = the default stream
};
inline constexpr uint16_t kDefaultPort = 9999;
inline constexpr std::string_view kUriScheme = "tlsframe";
// Parses tlsframe://HOST[:PORT][/NAME] (scheme case-insensitive). Refuses
// other schemes, userinfo, a query, a fragment, an empty host, a port
// outside 1..65535 and a NAME that is not wire::valid_stream_name().
Result<StreamAddress> parse_stream_uri(std::string_view uri);
// The same with the "tlsframe://" prefix optional: HOST[:PORT][/NAME].
Result<StreamAddress> parse_stream_target(std::string_view text);
// tlsframe://HOST:PORT/NAME (the port always written, "/NAME" only for a name);
// parse_stream_uri() reads it back to the same address.
std::string format_stream_uri(const StreamAddress &address);

class Receiver {
 public:
  // Starts connecting in the background; failures show up in next().
  static std::unique_ptr<Receiver> start(const ReceiverConfig &config);
  ~Receiver();  // stop()
  Receiver(const Receiver &) = delete;
  Receiver &operator=(const Receiver &) = delete;

  NextStatus next(Received &out, Error &error, std::chrono::steady_clock::time_point deadline);
  void cancel();  // wake next() now and make it return kCancelled until clear_cancel()
  void clear_cancel();
  void stop();  // close the connection and join the I/O thread; idempotent

  // Version 2 only: ask for a keyframe (KEYFRAME_REQUEST). At most one
  // request in flight: another is refused (kRateLimited) until a keyframe
  // arrives or the WELCOME's keyframe-interval-ms (else
  // kClientKeyframeRequestInterval) passed. Any thread; never blocks.
  SendStatus request_keyframe();
  // Version 2 only: ask for the server's list of streams (LIST_STREAMS); the
  // answer shows up in stream_list(). One in flight at a time. Any thread.
  SendStatus request_stream_list();
  // Version 2 only: ask for another rendition (RENDITION_REQUEST): a
  // wire::valid_rendition_name() or wire::kRenditionAuto (else kNotSupported).
  // The switch shows up in next() as a kRendition message. Any thread.
  SendStatus request_rendition(const std::string &rendition);
  // The last STREAM_LIST received on this connection (nullopt = none yet).
  std::optional<std::vector<StreamInfo>> stream_list() const;
  // The connection's WELCOME once the stream starts (version 1: version = 1
  // and the other fields empty); nullopt before.
  std::optional<Welcome> welcome() const;

  // Connects, sends LIST_STREAMS, reads the STREAM_LIST and closes. Version
  // 2 servers only (a version 1 server has no list: a kPeerRefused error).
  // config.stream_name is ignored; bounded by config.connect_timeout plus
  // config.read_timeout.
  static Result<std::vector<StreamInfo>> list_streams(const ReceiverConfig &config);

  bool connected() const;            // handshake completed and not yet closed
  std::string peer_address() const;  // "ip:port" once connected
  std::string peer_subject() const;  // server certificate subject once connected

  struct Impl;

 private:
  explicit Receiver(std::shared_ptr<Impl> impl);
  static std::unique_ptr<Receiver> start_impl(const ReceiverConfig &config, bool list_only);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tlsframe
