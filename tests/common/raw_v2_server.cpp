#include "common/raw_v2_server.h"

#include <openssl/err.h>
#include <poll.h>

#include <algorithm>

#include "core/wire_v2.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, 60000));
}

// Bounds each blocking call on fd by the time left (at least 1 ms).
void set_io_deadline(int fd, Clock::time_point deadline) {
  set_io_timeout(fd, std::chrono::milliseconds(std::max(1, ms_until(deadline))));
}

int select_v2(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
              unsigned int inlen, void *) {
  wire::AlpnSelection s = wire::select_alpn(in, inlen, false);
  if (s.choice != wire::AlpnChoice::kV2) return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = s.protocol;
  *outlen = s.protocol_size;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

RawV2Server::RawV2Server(const std::string &cert_file, const std::string &key_file, Alpn alpn)
    : RawTlsServer(cert_file, key_file) {
  if (ctx_ && alpn == Alpn::kV2) SSL_CTX_set_alpn_select_cb(ctx_, select_v2, nullptr);
}

std::string RawV2Server::selected_alpn() const {
  if (!ssl_) return "";
  const unsigned char *p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string(reinterpret_cast<const char *>(p), n) : "";
}

bool RawV2Server::read_exact(uint8_t *out, size_t size, Clock::time_point deadline,
                             ReadStatus &status) {
  size_t got = 0;
  // Bounded: each pass reads at least one byte or returns.
  while (got < size) {
    if (SSL_pending(ssl_) == 0) {
      pollfd pfd{fd_, POLLIN, 0};
      int r = ::poll(&pfd, 1, ms_until(deadline));
      if (r == 0) {
        status = ReadStatus::kTimeout;
        return false;
      }
      if (r < 0) {
        status = ReadStatus::kClosed;
        return false;
      }
    }
    set_io_deadline(fd_, deadline);
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl_, out + got, size - got, &n) != 1) {
      int e = SSL_get_error(ssl_, 0);
      if (e == SSL_ERROR_WANT_READ && Clock::now() < deadline) continue;  // a non-data record
      status = (e == SSL_ERROR_WANT_READ) ? ReadStatus::kTimeout : ReadStatus::kClosed;
      return false;
    }
    got += n;
  }
  return true;
}

RawV2Server::ReadStatus RawV2Server::read_message(Message &out, Clock::time_point deadline) {
  if (!ssl_) return ReadStatus::kClosed;
  std::vector<uint8_t> bytes(wire::kHeaderSize);
  ReadStatus status = ReadStatus::kMessage;
  if (!read_exact(bytes.data(), bytes.size(), deadline, status)) return status;
  wire::Header header;
  wire::DecodeResult h = wire::parse_header(bytes.data(), bytes.size(), wire::kMaxClientPayload,
                                            wire::Protocol::kV2Server, header);
  if (h.status == wire::DecodeStatus::kError) {
    error_ = h.error;
    return ReadStatus::kBad;
  }
  bytes.resize(wire::kHeaderSize + header.payload_size);
  if (header.payload_size != 0 &&
      !read_exact(bytes.data() + wire::kHeaderSize, header.payload_size, deadline, status))
    return status;
  wire::MessageView view;
  wire::DecodeResult r = wire::decode(bytes.data(), bytes.size(), wire::kMaxClientPayload,
                                      wire::Protocol::kV2Server, view);
  if (r.status != wire::DecodeStatus::kMessage) {
    error_ = r.error;
    return ReadStatus::kBad;
  }
  out.type = view.type;
  out.stream.assign(view.stream);
  return ReadStatus::kMessage;
}

bool RawV2Server::handshake_v2(std::string *stream_asked, Clock::time_point deadline,
                               uint32_t keyframe_interval_ms) {
  Message m;
  ReadStatus s = read_message(m, deadline);
  if (s != ReadStatus::kMessage || m.type != wire::MessageType::kHello) {
    if (error_.empty()) error_ = "no HELLO from the client";
    return false;
  }
  if (stream_asked) *stream_asked = m.stream;
  return send(wire::encode_welcome(m.stream, "raw-v2-test", keyframe_interval_ms));
}

bool RawV2Server::wait_client_closed(Clock::time_point deadline) {
  if (!ssl_) return true;
  uint8_t sink[4096];
  // Bounded by the deadline: each pass waits at most the time left.
  while (Clock::now() < deadline) {
    if (SSL_pending(ssl_) == 0) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, ms_until(deadline)) <= 0) return false;
    }
    set_io_deadline(fd_, deadline);
    size_t n = 0;
    if (SSL_read_ex(ssl_, sink, sizeof sink, &n) != 1) {
      int e = SSL_get_error(ssl_, 0);
      if (e == SSL_ERROR_WANT_READ) continue;
      ERR_clear_error();
      return true;
    }
  }
  return false;
}

std::vector<uint8_t> v2_caps(const std::string &caps) {
  return wire::encode_caps(caps, wire::Version::kV2);
}

std::vector<uint8_t> v2_buffer(uint64_t sequence, bool keyframe, const std::vector<uint8_t> &data) {
  wire::BufferMeta meta;
  meta.pts = sequence * 33'333'333;
  meta.duration = 33'333'333;
  meta.sequence = sequence;
  meta.flags = keyframe ? 0u : static_cast<uint32_t>(wire::kFlagDeltaUnit);
  return wire::encode_buffer(meta, data.data(), data.size(), wire::Version::kV2);
}

}  // namespace tlsframe::test
