// A bare OpenSSL tlsframe server on 127.0.0.1 (port 0) for tests of the
// client side of protocol version 2, before (and besides) the real server:
// it selects ALPN "tlsframe/2" (or, as a version 1 server, nothing), reads
// the client's messages and sends whatever a test gives it, hostile bytes
// included. Blocking calls, each bounded by a deadline; one client at a time;
// used from one thread at a time.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/raw_tls.h"
#include "core/wire_format.h"

namespace tlsframe::test {

// The listening, accept, send and close of RawTlsServer, plus ALPN and the
// version 2 client messages.
class RawV2Server : public RawTlsServer {
 public:
  enum class Alpn {
    kV2,    // select "tlsframe/2" when offered: a version 2 server
    kNone,  // select nothing: a version 1 server
  };
  RawV2Server(const std::string &cert_file, const std::string &key_file, Alpn alpn = Alpn::kV2);

  // The ALPN protocol selected for the accepted client ("" = none: version 1).
  std::string selected_alpn() const;

  // One client message, decoded as a version 2 server reads it.
  struct Message {
    wire::MessageType type = wire::MessageType::kHello;
    std::string stream;  // kHello: the stream asked for ("" = default)
  };
  enum class ReadStatus { kMessage, kClosed, kTimeout, kBad };
  // Reads one whole client message before the deadline. kClosed when the
  // client closed the connection, kBad on bytes that do not decode (error()).
  ReadStatus read_message(Message &out, std::chrono::steady_clock::time_point deadline);
  // Reads the HELLO and answers WELCOME (stream as asked, server "raw-v2-test",
  // keyframe_interval_ms 0 = not sent). False on anything else.
  bool handshake_v2(std::string *stream_asked, std::chrono::steady_clock::time_point deadline,
                    uint32_t keyframe_interval_ms = 0);

  // True once the client closed the connection before the deadline (data
  // read meanwhile is discarded). Reads through TLS, unlike RawTlsServer's,
  // so a close_notify counts and the connection's state stays whole.
  bool wait_client_closed(std::chrono::steady_clock::time_point deadline);

 private:
  bool read_exact(uint8_t *out, size_t size, std::chrono::steady_clock::time_point deadline,
                  ReadStatus &status);
};

// Messages of a version 2 stream, for tests.
std::vector<uint8_t> v2_caps(const std::string &caps);
std::vector<uint8_t> v2_buffer(uint64_t sequence, bool keyframe, const std::vector<uint8_t> &data);

}  // namespace tlsframe::test
