// Receiver: the client side. Connects, handshakes, verifies the server, then
// reads and decodes messages on its own I/O thread into a small bounded queue.
// The consumer (a GstPushSrc streaming thread) blocks in next() with a
// deadline; cancel() wakes it at once (GstBaseSrc unlock).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
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
  std::chrono::nanoseconds read_timeout = kDefaultReadTimeout;  // no data this long: error; 0 = none
  size_t max_queued = 4;  // decoded messages held before reading pauses (backpressure)
};

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
};

enum class NextStatus {
  kMessage,    // out holds a message (EOS and ERROR included)
  kTimeout,    // the deadline passed with nothing to return
  kCancelled,  // cancel() was called
  kError,      // the connection failed; error says why (final)
};

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

  bool connected() const;            // handshake completed and not yet closed
  std::string peer_address() const;  // "ip:port" once connected
  std::string peer_subject() const;  // server certificate subject once connected

  struct Impl;

 private:
  explicit Receiver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tlsframe
