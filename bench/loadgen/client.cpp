#include "client.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/tls_context.h"
#include "core/websocket.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"

namespace tlsframe::loadgen {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

constexpr size_t kScratch = 256 * 1024;
constexpr size_t kMaxErrors = 8;
constexpr int64_t kRetryDelayNs = 100'000'000;
// Largest message the parser keeps whole: a header and an ERROR body, or (version 2) a
// WELCOME or RENDITION field block.
constexpr size_t kAccSize =
    wire::kHeaderSize + std::max<size_t>(2 + wire::kMaxErrorText, wire::kMaxFieldBlock);
// --websocket: largest 101 response head read, and a close frame's payload (RFC 6455).
constexpr size_t kMaxResponseHead = 8192;
constexpr size_t kMaxClosePayload = 125;

// A header's value in an HTTP response head (name without case), "" when absent.
std::string header_value(const std::string &head, const std::string &name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    const size_t start = pos + 2, end = head.find("\r\n", start);
    if (end == std::string::npos || end == start) break;
    const size_t colon = head.find(':', start);
    if (colon != std::string::npos && colon < end && colon - start == name.size() &&
        strncasecmp(head.c_str() + start, name.c_str(), name.size()) == 0) {
      size_t a = colon + 1, b = end;
      while (a < b && (head[a] == ' ' || head[a] == '\t')) ++a;
      while (b > a && (head[b - 1] == ' ' || head[b - 1] == '\t')) --b;
      return head.substr(a, b - a);
    }
    pos = end;
  }
  return "";
}

uint64_t be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

std::string ssl_error_text() {
  std::string s;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s;
}

}  // namespace

struct Worker::Connection {
  enum State { kIdle = 0, kConnecting, kHandshake, kStreaming, kRetryWait, kDone, kFailed };
  unsigned id = 0;
  ClientCounters *ctr = nullptr;
  int fd = -1;
  SSL *ssl = nullptr;
  State state = kIdle;
  int64_t retry_at = 0;
  // Parser state (tlsframe protocol).
  uint8_t acc[kAccSize];
  size_t have = 0;
  size_t need = wire::kHeaderSize;
  wire::Header hdr;
  uint64_t skip = 0;  // payload bytes still to pass over
  bool in_body = false;
  uint64_t meta_seq = 0, meta_send = 0;
  bool have_seq = false;
  uint64_t last_seq = 0;
  // --websocket: the upgrade, then the server's frames around the v2 messages.
  enum class Ws { kSendRequest, kResponseHead, kFrames };
  Ws ws = Ws::kSendRequest;
  std::string ws_request;     // the GET + Upgrade, until SSL_write took it
  std::string ws_head;        // the response head so far
  std::string ws_accept;      // the Sec-WebSocket-Accept the key calls for
  uint8_t wsh[ws::kMaxHeaderSize];  // a frame header so far
  size_t wsh_have = 0, wsh_need = 2;
  bool ws_in_payload = false;
  uint8_t ws_op = 0;
  uint64_t ws_left = 0;       // payload bytes of the current frame still to come
  std::string ws_close;       // a close frame's payload
  // Version 2 (--stream, --rendition).
  std::string asked;              // the rendition asked for ("" = none named)
  std::vector<uint8_t> pending;   // a client message SSL_write has not taken yet
  bool welcomed = false;          // native v2: WELCOME received
  std::string rendition;          // the rendition the server last stated ("" = none)

  void set_state(State s) {
    state = s;
    ctr->state.store(s, std::memory_order_relaxed);
  }
  void reset_parser() {
    have = 0;
    need = wire::kHeaderSize;
    skip = 0;
    in_body = false;
  }
  bool at_message_boundary() const { return have == 0 && skip == 0 && !in_body; }
  void reset_v2() {
    pending.clear();
    welcomed = false;
    rendition.clear();
  }
  void reset_websocket() {
    ws = Ws::kSendRequest;
    ws_request.clear();
    ws_head.clear();
    ws_accept.clear();
    wsh_have = 0;
    wsh_need = 2;
    ws_in_payload = false;
    ws_left = 0;
    ws_close.clear();
  }
};

Worker::Worker(SharedRun &run, std::vector<unsigned> client_ids) : run_(run) {
  for (unsigned id : client_ids) {
    auto c = std::make_unique<Connection>();
    c->id = id;
    c->ctr = run_.counters[id].get();
    const auto &list = run_.opt.renditions;
    if (!list.empty()) c->asked = list[id % list.size()];
    conns_.push_back(std::move(c));
  }
  scratch_.resize(kScratch);
  latencies_.reserve(1 << 20);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
}

Worker::~Worker() {
  for (auto &c : conns_) close_conn(*c, "");
  if (epfd_ >= 0) ::close(epfd_);
}

void Worker::start() {
  thread_ = std::thread([this] { loop(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::open(Connection &c) {
  c.reset_parser();
  c.reset_websocket();
  c.reset_v2();
  c.have_seq = false;
  c.ctr->attempts.fetch_add(1, std::memory_order_relaxed);
  c.fd = ::socket(run_.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    close_conn(c, std::string("socket: ") + std::strerror(errno));
    return;
  }
  if (run_.opt.rcvbuf) {
    int v = static_cast<int>(run_.opt.rcvbuf);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  }
  int rc = ::connect(c.fd, reinterpret_cast<const sockaddr *>(&run_.addr), run_.addr_len);
  if (rc != 0 && errno != EINPROGRESS) {
    close_conn(c, std::string("connect: ") + std::strerror(errno));
    return;
  }
  c.set_state(Connection::kConnecting);
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN;
  ev.data.ptr = &c;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
}

// Ends a connection. error "" = clean end (EOS, or the run is over).
void Worker::close_conn(Connection &c, const std::string &error) {
  if (c.ssl) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  if (c.fd >= 0) {
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  if (c.state == Connection::kDone || c.state == Connection::kFailed) return;
  bool before_first = c.ctr->first_frame_ns.load(std::memory_order_relaxed) < 0;
  if (!error.empty()) {
    if (errors_.size() < kMaxErrors &&
        std::find(errors_.begin(), errors_.end(), error) == errors_.end()) {
      errors_.push_back(error);
    }
    if (run_.opt.retry && before_first && !run_.stop.load()) {
      c.set_state(Connection::kRetryWait);
      c.retry_at = steady_ns() + kRetryDelayNs;
      return;
    }
    c.set_state(Connection::kFailed);
    run_.failed++;
  } else {
    c.set_state(Connection::kDone);
  }
  if (before_first) run_.done_first++;
}

bool Worker::drive_handshake(Connection &c) {
  ERR_clear_error();
  int rc = SSL_do_handshake(c.ssl);
  if (rc == 1) {
    c.set_state(Connection::kStreaming);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    if (run_.opt.websocket) return send_upgrade(c);
    if (!run_.opt.v2) return true;
    if (!check_alpn(c)) return false;
    std::vector<wire::Field> hello = {{"stream", run_.opt.stream}};
    if (!c.asked.empty()) hello.push_back({"rendition", c.asked});
    c.pending = wire::encode_hello(hello);
    if (c.pending.empty()) {  // names were checked in main(): never reached
      close_conn(c, "cannot encode the HELLO");
      return false;
    }
    return send_pending(c);
  }
  int err = SSL_get_error(c.ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    epoll_event ev{};
    ev.events = EPOLLIN | (err == SSL_ERROR_WANT_WRITE ? uint32_t{EPOLLOUT} : 0u);
    ev.data.ptr = &c;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    return true;
  }
  long vr = SSL_get_verify_result(c.ssl);
  std::string why = vr != X509_V_OK ? std::string("certificate verify failed: ") +
                                          X509_verify_cert_error_string(vr)
                                    : "TLS handshake failed: " + ssl_error_text();
  close_conn(c, why);
  return false;
}

void Worker::on_event(Connection &c, uint32_t events) {
  if (c.state == Connection::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close_conn(c, std::string("connect: ") + std::strerror(err));
      return;
    }
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    if (!run_.opt.tls) {
      c.set_state(Connection::kStreaming);
      if (run_.opt.hello) {
        static const char kByte = '\n';
        if (::send(c.fd, &kByte, 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
          close_conn(c, std::string("send: ") + std::strerror(errno));
          return;
        }
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = &c;
      epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    } else {
      c.ssl = SSL_new(run_.ctx);
      if (!c.ssl || SSL_set_fd(c.ssl, c.fd) != 1 ||
          !tls::set_expected_server_name(c.ssl, run_.verify_name)) {
        close_conn(c, "cannot set up TLS: " + ssl_error_text());
        return;
      }
      SSL_set_connect_state(c.ssl);
      c.set_state(Connection::kHandshake);
      if (!drive_handshake(c)) return;
    }
  } else if (c.state == Connection::kHandshake) {
    if (!drive_handshake(c)) return;
  } else if (c.state == Connection::kStreaming && run_.opt.websocket &&
             c.ws == Connection::Ws::kSendRequest && (events & EPOLLOUT)) {
    if (!send_upgrade(c)) return;
  } else if (c.state == Connection::kStreaming && !c.pending.empty() && (events & EPOLLOUT)) {
    if (!send_pending(c)) return;
  }
  if (c.state == Connection::kStreaming && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    read_all(c);
  }
}

void Worker::read_all(Connection &c) {
  // Bounded per event so one busy connection does not starve the others
  // (epoll is level-triggered: the rest is read on the next round).
  for (int round = 0; round < 8 && c.state == Connection::kStreaming; ++round) {
    ssize_t n;
    if (c.ssl) {
      ERR_clear_error();
      int rc = SSL_read(c.ssl, scratch_.data(), static_cast<int>(scratch_.size()));
      if (rc <= 0) {
        int err = SSL_get_error(c.ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;
        if (err == SSL_ERROR_ZERO_RETURN) {
          close_conn(c, run_.opt.protocol == Protocol::kRaw ? "" : "server closed without EOS");
        } else {
          std::string detail = ssl_error_text();
          close_conn(c, detail.empty() ? "connection lost" : "TLS read failed: " + detail);
        }
        return;
      }
      n = rc;
    } else {
      n = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        close_conn(c, std::string("recv: ") + std::strerror(errno));
        return;
      }
      if (n == 0) {
        close_conn(c, "");
        return;
      }
    }
    if (!consume(c, scratch_.data(), static_cast<size_t>(n))) return;
  }
}

bool Worker::consume(Connection &c, const uint8_t *p, size_t n) {
  ClientCounters &k = *c.ctr;
  k.bytes.fetch_add(n, std::memory_order_relaxed);
  if (run_.opt.protocol == Protocol::kRaw) {
    uint64_t fs = std::max<uint64_t>(1, run_.opt.frame_size);
    uint64_t total = k.bytes.load(std::memory_order_relaxed);
    k.frames.store(total / fs, std::memory_order_relaxed);
    if (total >= fs && k.first_frame_ns.load(std::memory_order_relaxed) < 0) {
      k.first_frame_ns.store(steady_ns() - run_.start_ns, std::memory_order_relaxed);
      run_.done_first++;
    }
    return true;
  }
  if (run_.opt.websocket) return consume_websocket(c, p, n);
  return consume_messages(c, p, n);
}

// The upgrade a browser's viewer page sends (Origin = https://Host, a random
// 16-byte key), written once the TLS handshake is done.
bool Worker::send_upgrade(Connection &c) {
  if (c.ws_request.empty()) {
    unsigned char nonce[16];
    unsigned char key[32];
    if (RAND_bytes(nonce, sizeof nonce) != 1) {
      close_conn(c, "RAND_bytes failed: " + ssl_error_text());
      return false;
    }
    const int kn = EVP_EncodeBlock(key, nonce, sizeof nonce);
    const std::string k(reinterpret_cast<const char *>(key), kn > 0 ? static_cast<size_t>(kn) : 0);
    c.ws_accept = ws::accept_key(k);  // base64(SHA-1(key + GUID)), OpenSSL's
    c.ws_request = "GET " + run_.opt.ws_path + " HTTP/1.1\r\nHost: " + run_.opt.ws_host +
                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                   k + "\r\nOrigin: https://" + run_.opt.ws_host +
                   "\r\nUser-Agent: tlsframe-loadgen\r\n\r\n";
  }
  const Write w = write_whole(c, c.ws_request.data(), c.ws_request.size(),
                              "cannot send the WebSocket upgrade: ");
  if (w != Write::kDone) return w == Write::kWaiting;
  c.ws = Connection::Ws::kResponseHead;
  return true;
}

// The 101 response head in c.ws_head: status and Sec-WebSocket-Accept (RFC 6455, 4.1).
bool Worker::check_upgrade_response(Connection &c) {
  const std::string &h = c.ws_head;
  const std::string status = h.substr(0, h.find("\r\n"));
  if (h.rfind("HTTP/1.1 101 ", 0) != 0) {
    close_conn(c, "no WebSocket upgrade: " + status.substr(0, 120));
    return false;
  }
  if (strcasecmp(header_value(h, "Upgrade").c_str(), "websocket") != 0) {
    close_conn(c, "WebSocket upgrade without Upgrade: websocket");
    return false;
  }
  const std::string accept = header_value(h, "Sec-WebSocket-Accept");
  if (accept.empty() || accept != c.ws_accept) {
    close_conn(c, "WebSocket upgrade with a wrong Sec-WebSocket-Accept");
    return false;
  }
  return true;
}

// After the upgrade: server frames (FIN set, unmasked, never fragmented).
// Each binary message is one v2 message (BUFFER, EOS, ERROR), fed to the
// same parser as a native connection's; text (the caps) and pings are passed
// over; a close ends the connection (after EOS: never reached, EOS ends it).
bool Worker::consume_websocket(Connection &c, const uint8_t *p, size_t n) {
  while (n > 0 || (c.ws_in_payload && c.ws_left == 0)) {
    if (c.ws == Connection::Ws::kSendRequest) {
      close_conn(c, "protocol error: server bytes before the WebSocket upgrade");
      return false;
    }
    if (c.ws == Connection::Ws::kResponseHead) {
      const size_t before = c.ws_head.size();
      const size_t take = std::min(n, kMaxResponseHead - before);
      c.ws_head.append(reinterpret_cast<const char *>(p), take);
      const size_t end = c.ws_head.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
      if (end == std::string::npos) {
        if (c.ws_head.size() >= kMaxResponseHead) {
          close_conn(c, "protocol error: WebSocket response head over 8 KiB");
          return false;
        }
        return true;  // all of it taken
      }
      const size_t used = end + 4 - before;  // of this input
      c.ws_head.resize(end + 4);
      p += used;
      n -= used;
      if (!check_upgrade_response(c)) return false;
      c.ws = Connection::Ws::kFrames;
      if (!c.asked.empty()) {
        // The viewer page's choice: RENDITION_REQUEST in one masked binary frame (RFC
        // 6455 5.3; the message is under 126 bytes: names are at most 64).
        const auto msg = wire::encode_rendition_request(c.asked);
        uint8_t mask[4];
        if (msg.empty() || msg.size() > 125 || RAND_bytes(mask, sizeof mask) != 1) {
          close_conn(c, "cannot make the RENDITION_REQUEST frame");
          return false;
        }
        c.pending = {0x82, static_cast<uint8_t>(0x80 | msg.size()), mask[0], mask[1], mask[2],
                     mask[3]};
        for (size_t i = 0; i < msg.size(); ++i) c.pending.push_back(msg[i] ^ mask[i % 4]);
        if (!send_pending(c)) return false;
      }
      continue;
    }
    if (!c.ws_in_payload) {
      const size_t take = std::min(c.wsh_need - c.wsh_have, n);
      std::memcpy(c.wsh + c.wsh_have, p, take);
      c.wsh_have += take;
      p += take;
      n -= take;
      if (c.wsh_have < c.wsh_need) return true;
      const uint8_t len7 = c.wsh[1] & 0x7F;
      if (c.wsh_need == 2 && len7 >= 126) {
        c.wsh_need = len7 == 126 ? 4 : 10;
        continue;
      }
      if ((c.wsh[0] & 0x80) == 0 || (c.wsh[0] & 0x70) != 0 || (c.wsh[1] & 0x80) != 0) {
        close_conn(c, "protocol error: a server frame fragmented, with RSV bits or masked");
        return false;
      }
      uint64_t len = len7;
      if (c.wsh_need > 2) {
        len = 0;
        for (size_t i = 2; i < c.wsh_need; ++i) len = (len << 8) | c.wsh[i];
      }
      c.ws_op = c.wsh[0] & 0x0F;
      c.ws_left = len;
      c.ws_in_payload = true;
      c.wsh_have = 0;
      c.wsh_need = 2;
      c.ws_close.clear();
      const auto op = static_cast<ws::Opcode>(c.ws_op);
      if (op == ws::Opcode::kBinary && !c.at_message_boundary()) {
        close_conn(c, "protocol error: a v2 message split over WebSocket messages");
        return false;
      }
      if (op != ws::Opcode::kBinary && op != ws::Opcode::kText && len > kMaxClosePayload) {
        close_conn(c, "protocol error: a control frame over 125 bytes");
        return false;
      }
      continue;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(c.ws_left, n));
    const auto op = static_cast<ws::Opcode>(c.ws_op);
    if (op == ws::Opcode::kBinary && take > 0) {
      if (!consume_messages(c, p, take)) return false;
    } else if (op == ws::Opcode::kClose) {
      c.ws_close.append(reinterpret_cast<const char *>(p), take);
    }
    p += take;
    n -= take;
    c.ws_left -= take;
    if (c.ws_left > 0) return true;
    c.ws_in_payload = false;  // the frame is complete
    if (op == ws::Opcode::kBinary && !c.at_message_boundary()) {
      close_conn(c, "protocol error: a WebSocket message that is not whole v2 messages");
      return false;
    }
    if (op == ws::Opcode::kClose) {
      const unsigned code = c.ws_close.size() >= 2
                                ? (static_cast<uint8_t>(c.ws_close[0]) << 8) |
                                      static_cast<uint8_t>(c.ws_close[1])
                                : 1005;
      close_conn(c, "server closed the WebSocket (" + std::to_string(code) + ")" +
                        (c.ws_close.size() > 2 ? ": " + c.ws_close.substr(2) : ""));
      return false;
    }
  }
  return true;
}

bool Worker::check_alpn(Connection &c) {
  const unsigned char *alpn = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(c.ssl, &alpn, &size);
  const std::string_view selected(reinterpret_cast<const char *>(alpn), alpn ? size : 0);
  if (selected != wire::kAlpnV2) {
    close_conn(c, "the server did not select ALPN tlsframe/2 (a version 1 server?)");
    return false;
  }
  return true;
}

bool Worker::send_pending(Connection &c) {
  const Write w = write_whole(c, c.pending.data(), c.pending.size(), "cannot send to the server: ");
  if (w != Write::kDone) return w == Write::kWaiting;
  c.pending.clear();  // without partial writes, SSL_write took all of it
  return true;
}

Worker::Write Worker::write_whole(Connection &c, const void *data, size_t size,
                                  const char *what) {
  ERR_clear_error();
  const int rc = SSL_write(c.ssl, data, static_cast<int>(size));
  epoll_event ev{};
  ev.data.ptr = &c;
  if (rc <= 0) {
    const int err = SSL_get_error(c.ssl, rc);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
      ev.events = EPOLLIN | EPOLLOUT;  // retried, same bytes, on the next event
      epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
      return Write::kWaiting;
    }
    close_conn(c, what + ssl_error_text());
    return Write::kFailed;
  }
  ev.events = EPOLLIN;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  return Write::kDone;
}

bool Worker::on_rendition_message(Connection &c) {
  wire::MessageView v;
  const auto r =
      wire::decode(c.acc, c.have, wire::kDefaultMaxPayload, wire::Protocol::kV2Client, v);
  if (r.status != wire::DecodeStatus::kMessage) {
    close_conn(c, "protocol error: " + r.error);
    return false;
  }
  if (v.type == wire::MessageType::kWelcome) {
    if (c.welcomed) {
      close_conn(c, "protocol error: a second WELCOME");
      return false;
    }
    c.welcomed = true;
  }
  c.rendition.assign(v.rendition);
  return true;
}

std::map<std::string, unsigned> Worker::rendition_counts() const {
  std::map<std::string, unsigned> m;
  for (const auto &c : conns_) {
    if (!c->rendition.empty()) m[c->rendition]++;
  }
  return m;
}

unsigned Worker::rendition_mismatches() const {
  unsigned n = 0;
  for (const auto &c : conns_) {
    if (!c->asked.empty() && c->asked != wire::kRenditionAuto && c->rendition != c->asked) n++;
  }
  return n;
}

bool Worker::consume_messages(Connection &c, const uint8_t *p, size_t n) {
  ClientCounters &k = *c.ctr;
  const bool v2 = run_.opt.websocket || run_.opt.v2;
  const wire::Protocol protocol = v2 ? wire::Protocol::kV2Client : wire::Protocol::kV1Client;
  while (n > 0) {
    if (c.skip > 0) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(c.skip, n));
      c.skip -= take;
      p += take;
      n -= take;
      if (c.skip > 0) return true;
    } else {
      size_t take = std::min(c.need - c.have, n);
      std::memcpy(c.acc + c.have, p, take);
      c.have += take;
      p += take;
      n -= take;
      if (c.have < c.need) return true;
      if (!c.in_body) {
        auto r = wire::parse_header(c.acc, c.have, wire::kDefaultMaxPayload, protocol, c.hdr);
        if (r.status != wire::DecodeStatus::kMessage) {
          close_conn(c, "protocol error: " + r.error);
          return false;
        }
        c.in_body = true;
        const bool media = c.hdr.type == wire::MessageType::kCaps ||
                           c.hdr.type == wire::MessageType::kBuffer ||
                           c.hdr.type == wire::MessageType::kEos ||
                           c.hdr.type == wire::MessageType::kRendition;
        if (run_.opt.v2 && !run_.opt.websocket && !c.welcomed && media) {
          close_conn(c, "protocol error: the stream before WELCOME");
          return false;
        }
        switch (c.hdr.type) {
          case wire::MessageType::kBuffer:
            c.need = wire::kHeaderSize + wire::kBufferMetaSize;
            continue;
          case wire::MessageType::kError:
            c.need = wire::kHeaderSize + c.hdr.payload_size;  // bounded by parse_header
            if (c.need > kAccSize) {
              close_conn(c, "protocol error: oversized ERROR message");
              return false;
            }
            continue;
          case wire::MessageType::kWelcome:
          case wire::MessageType::kRendition:
            c.need = wire::kHeaderSize + c.hdr.payload_size;  // at most kMaxFieldBlock
            if (c.need > kAccSize) {
              close_conn(c, "protocol error: oversized field block");
              return false;
            }
            continue;
          case wire::MessageType::kCaps:
          case wire::MessageType::kStreamList:  // never asked for; passed over
            c.skip = c.hdr.payload_size;
            break;
          case wire::MessageType::kEos:
            break;
          default:  // v1: parse_header refuses v2 types; v2: client -> server types
            close_conn(c, "protocol error: unexpected message type");
            return false;
        }
      } else if (c.hdr.type == wire::MessageType::kBuffer) {
        const uint8_t *m = c.acc + wire::kHeaderSize;
        c.meta_seq = be64(m + 32);
        c.meta_send = be64(m + 40);
        c.skip = c.hdr.payload_size - wire::kBufferMetaSize;
      } else if (c.hdr.type == wire::MessageType::kError) {
        wire::MessageView v;
        auto r = wire::decode(c.acc, c.have, wire::kDefaultMaxPayload, protocol, v);
        close_conn(c, "server error " + std::to_string(v.error_code) + ": " +
                          (r.status == wire::DecodeStatus::kMessage ? std::string(v.error_text)
                                                                    : r.error));
        return false;
      } else if (c.hdr.type == wire::MessageType::kWelcome ||
                 c.hdr.type == wire::MessageType::kRendition) {
        if (!on_rendition_message(c)) return false;
      }
      if (c.skip > 0) continue;
    }
    // One whole message has been passed over.
    if (c.hdr.type == wire::MessageType::kBuffer) {
      k.frames.fetch_add(1, std::memory_order_relaxed);
      if (c.have_seq && c.meta_seq > c.last_seq + 1) {
        k.seq_gaps.fetch_add(c.meta_seq - c.last_seq - 1, std::memory_order_relaxed);
      }
      c.have_seq = true;
      c.last_seq = c.meta_seq;
      if (k.first_frame_ns.load(std::memory_order_relaxed) < 0) {
        k.first_frame_ns.store(steady_ns() - run_.start_ns, std::memory_order_relaxed);
        run_.done_first++;
      }
      if (run_.measuring.load(std::memory_order_relaxed)) {
        uint64_t now = realtime_ns();
        uint64_t lat = now > c.meta_send ? (now - c.meta_send) / 1000 : 0;
        latencies_.push_back(static_cast<uint32_t>(std::min<uint64_t>(lat, UINT32_MAX)));
      }
    } else if (c.hdr.type == wire::MessageType::kEos) {
      run_.eos++;
      close_conn(c, "");
      return false;
    }
    c.reset_parser();
  }
  return true;
}

void Worker::open_batch() {
  const unsigned k = run_.opt.connect_batch;
  while (next_idle_ < conns_.size()) {
    unsigned o = run_.opened.load();
    if (o - run_.done_first.load() >= k) return;
    if (!run_.opened.compare_exchange_weak(o, o + 1)) continue;
    open(*conns_[next_idle_++]);
  }
}

void Worker::loop() {
  if (run_.opt.connect_batch == 0) {
    for (auto &c : conns_) open(*c);
  } else {
    open_batch();
  }
  std::vector<epoll_event> events(256);
  int64_t next_scan = 0;
  while (!run_.stop.load(std::memory_order_relaxed)) {
    int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 20);
    for (int i = 0; i < n; ++i) {
      auto *c = static_cast<Connection *>(events[i].data.ptr);
      if (c->fd >= 0) on_event(*c, events[i].events);
    }
    if (run_.opt.connect_batch) open_batch();
    int64_t now = steady_ns();
    if (now >= next_scan) {  // retries, at most every 20 ms
      next_scan = now + 20'000'000;
      for (auto &c : conns_) {
        if (c->state == Connection::kRetryWait && now >= c->retry_at) open(*c);
      }
    }
  }
  for (auto &c : conns_) close_conn(*c, "");
}

}  // namespace tlsframe::loadgen
