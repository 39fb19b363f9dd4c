// Fan-out server and receiver over real TLS on loopback (no GStreamer).
//
// Every test starts its own Server on 127.0.0.1 with port 0 and a PKI made at
// test time. Nothing sleeps to synchronise: server-side conditions are awaited
// through the ServerCallbacks (Events below), receiver-side ones through
// Receiver::next() deadlines; the few stats without a callback are polled in a
// loop bounded in time. Every wait has a deadline, so a broken core makes a
// test fail, never hang.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "core/receiver.h"
#include "core/server.h"
#include "core/wire_format.h"

namespace tlsframe {

// Readable names in gtest failure messages (found by ADL, hence not in the
// anonymous namespace).
static const char *kind_name(Error::Kind k) {
  switch (k) {
    case Error::Kind::kSettings:
      return "kSettings";
    case Error::Kind::kNetwork:
      return "kNetwork";
    case Error::Kind::kTls:
      return "kTls";
    case Error::Kind::kVerify:
      return "kVerify";
    case Error::Kind::kPeerRefused:
      return "kPeerRefused";
    case Error::Kind::kBusy:
      return "kBusy";
    case Error::Kind::kProtocol:
      return "kProtocol";
    case Error::Kind::kTimeout:
      return "kTimeout";
    case Error::Kind::kCancelled:
      return "kCancelled";
    case Error::Kind::kClosed:
      return "kClosed";
  }
  return "?";
}
[[maybe_unused]] static void PrintTo(Error::Kind k, std::ostream *os) {
  *os << kind_name(k);
}
[[maybe_unused]] static void PrintTo(RemoveReason r, std::ostream *os) {
  *os << remove_reason_name(r);
}
[[maybe_unused]] static void PrintTo(NextStatus s, std::ostream *os) {
  switch (s) {
    case NextStatus::kMessage:
      *os << "kMessage";
      return;
    case NextStatus::kTimeout:
      *os << "kTimeout";
      return;
    case NextStatus::kCancelled:
      *os << "kCancelled";
      return;
    case NextStatus::kError:
      *os << "kError";
      return;
  }
}

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using wire::MessageType;

// Upper bound for any awaited event. Tests normally see it within milliseconds;
// the bound only decides how long a broken core takes to fail a test.
constexpr Clock::duration kWait = 5s;
constexpr const char *kCaps =
    "video/x-h264, stream-format=(string)byte-stream, alignment=(string)au";

// ---------------------------------------------------------------------------
// Buffers: contents and metadata derived from an index, so a receiver can check
// what it got without sharing state with the publisher.

constexpr uint64_t kPtsBase = 1'000'000'000;
constexpr uint64_t kFrameNs = 33'366'667;

uint8_t pattern_byte(uint64_t index, size_t i) {
  return static_cast<uint8_t>(index * 131 + i * 7 + (i >> 8));
}

std::vector<uint8_t> pattern(uint64_t index, size_t size) {
  std::vector<uint8_t> v(size);
  for (size_t i = 0; i < size; ++i) v[i] = pattern_byte(index, i);
  return v;
}

wire::BufferMeta meta_for(uint64_t index, uint32_t flags) {
  wire::BufferMeta m;
  m.pts = kPtsBase + index * kFrameNs;
  m.dts = m.pts - 1000;
  m.duration = kFrameNs;
  m.flags = flags;
  return m;
}

uint64_t index_of(const wire::BufferMeta &m) {
  return (m.pts - kPtsBase) / kFrameNs;
}

void publish(Server &server, uint64_t index, uint32_t flags, size_t size = 256) {
  std::vector<uint8_t> data = pattern(index, size);
  server.publish_buffer(meta_for(index, flags), data.data(), data.size());
}

const uint8_t *data_of(const Received &m) {
  return m.storage->data() + m.data_offset;
}

::testing::AssertionResult data_is(const Received &m, uint64_t index, size_t size) {
  if (m.data_size != size) {
    return ::testing::AssertionFailure()
           << "buffer " << index << ": " << m.data_size << " bytes, expected " << size;
  }
  if (size && !m.storage)
    return ::testing::AssertionFailure() << "buffer " << index << ": no storage";
  const uint8_t *d = size ? data_of(m) : nullptr;
  for (size_t i = 0; i < size; ++i) {
    if (d[i] != pattern_byte(index, i)) {
      return ::testing::AssertionFailure() << "buffer " << index << ": byte " << i << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

bool is_delta(const Received &m) {
  return (m.meta.flags & wire::kFlagDeltaUnit) != 0;
}

// ---------------------------------------------------------------------------
// Receiver helpers.

std::string describe(NextStatus st, const Error &e) {
  switch (st) {
    case NextStatus::kMessage:
      return "a message";
    case NextStatus::kTimeout:
      return "a timeout";
    case NextStatus::kCancelled:
      return "kCancelled";
    case NextStatus::kError:
      return std::string("error ") + kind_name(e.kind) + ": " + e.message;
  }
  return "?";
}

// The next message of the given type within the timeout.
::testing::AssertionResult next_of_type(Receiver &r, MessageType type, Received &out,
                                        Clock::duration timeout = kWait) {
  Error e;
  NextStatus st = r.next(out, e, Clock::now() + timeout);
  if (st != NextStatus::kMessage) {
    return ::testing::AssertionFailure()
           << "expected a " << wire::message_type_name(type) << " message, got " << describe(st, e);
  }
  if (out.type != type) {
    return ::testing::AssertionFailure()
           << "expected a " << wire::message_type_name(type) << " message, got "
           << wire::message_type_name(out.type)
           << (out.type == MessageType::kError ? ": " + out.error_text : std::string());
  }
  return ::testing::AssertionSuccess();
}

// The next message is the caps string `caps`.
::testing::AssertionResult next_caps(Receiver &r, const std::string &caps) {
  Received m;
  if (auto ok = next_of_type(r, MessageType::kCaps, m); !ok) return ok;
  if (m.caps != caps)
    return ::testing::AssertionFailure() << "caps '" << m.caps << "' != '" << caps << "'";
  return ::testing::AssertionSuccess();
}

// The next message is the buffer published by publish(server, index, flags, size).
::testing::AssertionResult next_buffer(Receiver &r, uint64_t index, size_t size = 256) {
  Received m;
  if (auto ok = next_of_type(r, MessageType::kBuffer, m); !ok) return ok;
  if (m.meta.pts == wire::kNoTime || index_of(m.meta) != index) {
    return ::testing::AssertionFailure()
           << "expected buffer " << index << ", got buffer " << index_of(m.meta) << " (sequence "
           << m.meta.sequence << ")";
  }
  return data_is(m, index, size);
}

// The terminal error of the receiver, skipping at most max_skip messages
// (e.g. caps) that may come first.
::testing::AssertionResult next_error(Receiver &r, Error &error, int max_skip = 0,
                                      Clock::duration timeout = kWait) {
  const auto deadline = Clock::now() + timeout;
  for (int i = 0; i <= max_skip; ++i) {
    Received m;
    NextStatus st = r.next(m, error, deadline);
    if (st == NextStatus::kError) return ::testing::AssertionSuccess();
    if (st != NextStatus::kMessage) {
      return ::testing::AssertionFailure() << "expected an error, got " << describe(st, error);
    }
    if (i == max_skip) {
      return ::testing::AssertionFailure()
             << "expected an error, got a " << wire::message_type_name(m.type) << " message";
    }
  }
  return ::testing::AssertionFailure() << "unreachable";
}

// What a reader thread saw: every message until EOS/ERROR/failure/deadline.
struct ReadLog {
  std::vector<Received> messages;
  NextStatus last_status = NextStatus::kTimeout;
  Error error;
};

// Reads until an EOS or ERROR message, a failure, the deadline, or max_messages.
ReadLog read_until_end(Receiver &r, Clock::time_point deadline, size_t max_messages) {
  ReadLog log;
  while (log.messages.size() < max_messages) {
    Received m;
    log.last_status = r.next(m, log.error, deadline);
    if (log.last_status != NextStatus::kMessage) break;
    const bool end = m.type == MessageType::kEos || m.type == MessageType::kError;
    log.messages.push_back(std::move(m));
    if (end) break;
  }
  return log;
}

// Checks a received buffer sequence for a delta-unit stream: it starts on a
// keyframe, sequence numbers strictly increase, and every delta unit directly
// follows the buffer it depends on (a gap is only allowed before a keyframe).
::testing::AssertionResult consistent_gop_sequence(const std::vector<Received> &buffers) {
  if (buffers.empty()) return ::testing::AssertionFailure() << "no buffers";
  if (is_delta(buffers.front())) {
    return ::testing::AssertionFailure()
           << "first buffer (sequence " << buffers.front().meta.sequence << ") is a delta unit";
  }
  for (size_t i = 1; i < buffers.size(); ++i) {
    const uint64_t prev = buffers[i - 1].meta.sequence, cur = buffers[i].meta.sequence;
    if (cur <= prev) {
      return ::testing::AssertionFailure() << "sequence " << cur << " after " << prev;
    }
    if (is_delta(buffers[i]) && cur != prev + 1) {
      return ::testing::AssertionFailure()
             << "delta unit " << cur << " follows " << prev << ": its reference was dropped";
    }
  }
  return ::testing::AssertionSuccess();
}

// Polls a condition with no callback (server stats) until it holds or the
// timeout passes. Bounded in time and in iterations.
bool poll_until(const std::function<bool()> &pred, Clock::duration timeout = kWait) {
  const auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 100000; ++i) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);  // polling interval, not synchronisation
  }
  return pred();
}

// ---------------------------------------------------------------------------
// Server callbacks, recorded for the test thread.

struct RemovedEvent {
  ClientInfo info;
  RemoveReason reason;
  std::string error;
};

struct FailedHandshake {
  std::string address;
  Error error;
};

struct EventLog {
  std::vector<ClientInfo> added;
  std::vector<RemovedEvent> removed;
  std::vector<FailedHandshake> failed;
  int keyframe_wanted = 0;
  std::vector<Clock::time_point> keyframe_times;  // when each keyframe_wanted fired

  bool was_added(uint64_t id) const {
    return std::any_of(added.begin(), added.end(),
                       [id](const ClientInfo &c) { return c.id == id; });
  }
  const RemovedEvent *removal_of(uint64_t id) const {
    for (const auto &r : removed) {
      if (r.info.id == id) return &r;
    }
    return nullptr;
  }
  const FailedHandshake *failure_from(const std::string &address) const {
    for (const auto &f : failed) {
      if (f.address == address) return &f;
    }
    return nullptr;
  }
};

// Collects ServerCallbacks (called on I/O threads); the test waits on them
// with deadlines. Must outlive every server it is attached to.
class Events {
 public:
  ServerCallbacks callbacks() {
    ServerCallbacks cb;
    cb.client_added = [this](const ClientInfo &c) {
      record([&](EventLog &l) { l.added.push_back(c); });
    };
    cb.client_removed = [this](const ClientInfo &c, RemoveReason r, const std::string &e) {
      record([&](EventLog &l) { l.removed.push_back({c, r, e}); });
    };
    cb.keyframe_wanted = [this] {
      record([](EventLog &l) {
        l.keyframe_wanted++;
        l.keyframe_times.push_back(Clock::now());
      });
    };
    cb.handshake_failed = [this](const std::string &address, const Error &e) {
      record([&](EventLog &l) { l.failed.push_back({address, e}); });
    };
    return cb;
  }

  // Waits until pred(log) holds; false when the timeout passed first.
  bool wait(const std::function<bool(const EventLog &)> &pred, Clock::duration timeout = kWait) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cond_.wait_for(lock, timeout, [&] { return pred(log_); });
  }

  EventLog snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
  }

 private:
  void record(const std::function<void(EventLog &)> &f) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      f(log_);
    }
    cond_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable cond_;
  EventLog log_;
};

// ---------------------------------------------------------------------------
// Raw peers: plain TCP sockets and a hand-driven OpenSSL client.

// "127.0.0.1:port" of a socket's own end, as the server reports its peer.
std::string local_address(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) return "?";
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

uint16_t bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A blocking TCP socket with 5 s send/receive timeouts, closed on destruction.
class TcpSocket {
 public:
  TcpSocket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  ~TcpSocket() { close(); }
  TcpSocket(const TcpSocket &) = delete;
  TcpSocket &operator=(const TcpSocket &) = delete;

  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Before connect(): a small receive window makes a peer that never reads
  // stall the sender quickly.
  void set_receive_buffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  bool connect_to(uint16_t port) {
    sockaddr_in a = loopback(port);
    return ::connect(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
  }
  // Bound to 127.0.0.1 on a free port; listening or not.
  bool bind_any(bool listen) {
    sockaddr_in a = loopback(0);
    if (::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) return false;
    return !listen || ::listen(fd_, 16) == 0;
  }
  uint16_t port() const { return bound_port(fd_); }
  std::string address() const { return local_address(fd_); }
  bool send_all(const void *data, size_t size) {
    const auto *p = static_cast<const uint8_t *>(data);
    while (size > 0) {
      ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  // True once the peer closed the connection (EOF or reset) within the
  // timeout; whatever it sends first (e.g. a TLS alert) is discarded.
  bool wait_peer_closed(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (int i = 0; i < 1000 && Clock::now() < deadline; ++i) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    }
    return false;
  }

 private:
  int fd_;
};

// A TLS client driven by hand with OpenSSL (blocking, bounded by the socket
// timeouts): it can stop reading or send data, which Receiver never does.
class RawTlsClient {
 public:
  explicit RawTlsClient(const std::string &ca_file) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) return;
    SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), "127.0.0.1");
  }
  ~RawTlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
  }
  RawTlsClient(const RawTlsClient &) = delete;
  RawTlsClient &operator=(const RawTlsClient &) = delete;

  TcpSocket &socket() { return socket_; }
  // Connects and completes the TLS handshake (client side).
  ::testing::AssertionResult connect(uint16_t port) {
    if (!ssl_) return ::testing::AssertionFailure() << "cannot create the OpenSSL client";
    if (!socket_.connect_to(port)) {
      return ::testing::AssertionFailure() << "connect: " << std::strerror(errno);
    }
    SSL_set_fd(ssl_, socket_.fd());
    if (SSL_connect(ssl_) != 1) {
      return ::testing::AssertionFailure()
             << "SSL_connect failed, verify result " << SSL_get_verify_result(ssl_);
    }
    return ::testing::AssertionSuccess();
  }
  bool write(const std::string &text) {
    return SSL_write(ssl_, text.data(), static_cast<int>(text.size())) ==
           static_cast<int>(text.size());
  }

 private:
  TcpSocket socket_;
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
};

// ---------------------------------------------------------------------------
// Fixture: a fresh PKI, the recorded callbacks, and config builders.

class ServerReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(HasFailure()) << "test PKI could not be generated"; }

  ServerConfig server_config() const {
    ServerConfig c;
    c.host = "127.0.0.1";
    c.port = 0;
    c.tls.cert_file = pki_.server_cert();
    c.tls.key_file = pki_.server_key();
    return c;
  }

  // Starts a server with the fixture's callbacks; nullptr (and a failure) if it cannot.
  std::unique_ptr<Server> start_server(const ServerConfig &config) {
    auto r = Server::start(config, events_.callbacks());
    if (!r.ok()) {
      ADD_FAILURE() << "Server::start: " << r.error().message << " (" << r.error().detail << ")";
      return nullptr;
    }
    return std::move(r.value());
  }

  ReceiverConfig receiver_config(uint16_t port) const {
    ReceiverConfig c;
    c.host = "127.0.0.1";
    c.port = port;
    c.tls.ca_file = pki_.ca();
    c.connect_timeout = kWait;
    return c;
  }

  // Starts a receiver and waits until the server reports it added. *id gets
  // its server-side client id. nullptr (and a failure) if it never joins.
  std::unique_ptr<Receiver> connect_receiver(Server &server, uint64_t *id = nullptr) {
    return connect_receiver(receiver_config(server.port()), id);
  }
  std::unique_ptr<Receiver> connect_receiver(const ReceiverConfig &config, uint64_t *id = nullptr) {
    const size_t before = events_.snapshot().added.size();
    auto r = Receiver::start(config);
    if (!events_.wait([&](const EventLog &l) { return l.added.size() > before; })) {
      Received m;
      Error e;
      NextStatus st = r->next(m, e, Clock::now());
      ADD_FAILURE() << "receiver was not added by the server; receiver says " << describe(st, e);
      return nullptr;
    }
    if (id) *id = events_.snapshot().added.back().id;
    return r;
  }

  // A receiver that connected earlier still gets a buffer published now.
  void expect_still_receives(Server &server, Receiver &good, uint64_t index) {
    publish(server, index, 0);
    EXPECT_TRUE(next_buffer(good, index)) << "the good receiver stopped receiving";
  }

  test::Pki pki_;
  Events events_;  // declared before any server a test makes, so it outlives them
};

// ===========================================================================
// Fan-out: caps, buffers, metadata, EOS.

// Publishes a mixed stream to three receivers and checks each got all of it.
void run_fan_out(Server &server, std::vector<std::unique_ptr<Receiver>> &rx, Events &events) {
  struct Sent {
    wire::BufferMeta meta;
    std::vector<uint8_t> data;
  };
  constexpr int kBuffers = 60;
  std::vector<Sent> sent;
  for (int i = 0; i < kBuffers; ++i) {
    uint32_t flags = 0;
    if (i == 0) flags = wire::kFlagHeader | wire::kFlagDiscont;
    if (i % 10 != 0) flags |= wire::kFlagDeltaUnit;
    if (i % 3 == 1) flags |= wire::kFlagMarker;
    if (i % 7 == 6) flags |= wire::kFlagDroppable;
    if (i == 13) flags |= wire::kFlagGap | wire::kFlagCorrupted;
    wire::BufferMeta meta = meta_for(static_cast<uint64_t>(i), flags);
    if (i % 4 == 3) meta.dts = wire::kNoTime;
    if (i == 5) meta.pts = wire::kNoTime;
    if (i == 7) meta.duration = wire::kNoTime;
    const size_t size = i == 1 ? 0 : (i == 2 ? 70000 : 100 + 37 * static_cast<size_t>(i));
    sent.push_back({meta, pattern(static_cast<uint64_t>(i), size)});
  }

  std::vector<std::future<ReadLog>> readers;
  const auto deadline = Clock::now() + kWait;
  for (auto &r : rx) {
    Receiver *p = r.get();
    readers.push_back(std::async(
        std::launch::async, [p, deadline] { return read_until_end(*p, deadline, kBuffers + 10); }));
  }

  server.publish_caps(kCaps);
  for (const Sent &s : sent) server.publish_buffer(s.meta, s.data.data(), s.data.size());
  EXPECT_TRUE(server.publish_eos_and_flush(std::chrono::milliseconds(3000)))
      << "EOS was not flushed to every client";

  for (size_t r = 0; r < readers.size(); ++r) {
    SCOPED_TRACE("receiver " + std::to_string(r));
    ReadLog log = readers[r].get();
    ASSERT_EQ(log.messages.size(), static_cast<size_t>(kBuffers + 2))
        << "stopped with " << describe(log.last_status, log.error);
    ASSERT_EQ(log.messages.front().type, MessageType::kCaps);
    EXPECT_EQ(log.messages.front().caps, kCaps);
    const uint64_t first_seq = log.messages[1].meta.sequence;
    for (int i = 0; i < kBuffers; ++i) {
      const Received &m = log.messages[static_cast<size_t>(i) + 1];
      SCOPED_TRACE("buffer " + std::to_string(i));
      ASSERT_EQ(m.type, MessageType::kBuffer);
      EXPECT_EQ(m.meta.pts, sent[i].meta.pts);
      EXPECT_EQ(m.meta.dts, sent[i].meta.dts);
      EXPECT_EQ(m.meta.duration, sent[i].meta.duration);
      EXPECT_EQ(m.meta.flags, sent[i].meta.flags);
      EXPECT_EQ(m.meta.sequence, first_seq + static_cast<uint64_t>(i));
      EXPECT_NE(m.meta.send_time_ns, 0u);
      EXPECT_TRUE(data_is(m, static_cast<uint64_t>(i), sent[i].data.size()));
    }
    EXPECT_EQ(log.messages.back().type, MessageType::kEos);
  }

  ASSERT_TRUE(events.wait([&](const EventLog &l) { return l.removed.size() == rx.size(); }))
      << "client_removed did not fire for every client after EOS";
  for (const auto &r : events.snapshot().removed) EXPECT_EQ(r.reason, RemoveReason::kEos);
  ServerStats st = server.stats();
  EXPECT_EQ(st.buffers_published, static_cast<uint64_t>(kBuffers));
  EXPECT_EQ(st.clients_total, rx.size());
  EXPECT_EQ(st.frames_dropped, 0u);
  EXPECT_EQ(st.clients, 0u);
  EXPECT_GT(st.bytes_sent, 3u * 70000u);
}

TEST_F(ServerReceiverTest, EveryReceiverGetsCapsThenAllBuffersInOrderWithMetaAndDataThenEos) {
  ServerConfig cfg = server_config();
  cfg.queue_max_buffers = 1000;  // no overflow: this test is about delivery, not dropping
  cfg.queue_max_bytes = 64ull << 20;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 3; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  EXPECT_EQ(server->num_clients(), 3u);
  EXPECT_EQ(server->client_stats().size(), 3u);
  run_fan_out(*server, rx, events_);
}

TEST_F(ServerReceiverTest, FanOutIsCompleteAndOrderedWithSeveralIoThreads) {
  ServerConfig cfg = server_config();
  cfg.io_threads = 4;
  cfg.queue_max_buffers = 1000;
  cfg.queue_max_bytes = 64ull << 20;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 3; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  run_fan_out(*server, rx, events_);
}

TEST_F(ServerReceiverTest, ReceiverJoiningAfterEosGetsCapsThenEos) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(1000)));  // nobody to flush
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(next_caps(*r, kCaps));
  Received m;
  EXPECT_TRUE(next_of_type(*r, MessageType::kEos, m));
}

// Regression: after an EOS or ERROR message the receiver closed its socket but
// left is_connected set.
TEST_F(ServerReceiverTest, ReceiverReportsNotConnectedAfterEos) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  // The server may report the client before the client's own handshake
  // handler ran (TLS 1.3), so look once a first message has arrived.
  server->publish_caps("image/jpeg");
  Received first;
  ASSERT_TRUE(next_of_type(*r, MessageType::kCaps, first));
  EXPECT_TRUE(r->connected());
  EXPECT_EQ(r->peer_address(), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_NE(r->peer_subject().find("localhost"), std::string::npos) << r->peer_subject();
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(3000)));
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kEos, m));
  // receiver.h: connected() = "handshake completed and not yet closed"; the
  // receiver closed its socket when the EOS message arrived.
  EXPECT_FALSE(r->connected()) << "connected() still true after EOS closed the connection";
}

// Regression: stop() posted close_socket() and called io.stop() at once, so
// the connection stayed open until the Receiver was destroyed.
TEST_F(ServerReceiverTest, ReceiverStopIsReportedAsClientClosed) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  r->stop();
  r->stop();  // idempotent
  // The Receiver object stays alive: stop() itself must close the connection.
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.removal_of(id) != nullptr; }, 2s))
      << "the server never saw the connection close after Receiver::stop()";
  EXPECT_EQ(events_.snapshot().removal_of(id)->reason, RemoveReason::kClosed);
  EXPECT_EQ(server->num_clients(), 0u);
  EXPECT_FALSE(server->client_stats(id).has_value());
}

// ===========================================================================
// Keyframe gating and caps.

TEST_F(ServerReceiverTest, JoinerOfDeltaStreamSkipsDeltasUntilKeyframeAndAsksForKeyframe) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, wire::kFlagDeltaUnit);  // the stream has delta units; nobody listens yet
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0);

  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "keyframe_wanted did not fire when a client joined a delta-unit stream";

  publish(*server, 1, wire::kFlagDeltaUnit);
  publish(*server, 2, wire::kFlagDeltaUnit);
  publish(*server, 3, 0);
  publish(*server, 4, wire::kFlagDeltaUnit);
  publish(*server, 5, wire::kFlagDeltaUnit);

  EXPECT_TRUE(next_caps(*r, kCaps));
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kBuffer, m));
  EXPECT_EQ(index_of(m.meta), 3u) << "first buffer must be the keyframe";
  EXPECT_FALSE(is_delta(m));
  EXPECT_TRUE(data_is(m, 3, 256));
  EXPECT_TRUE(next_buffer(*r, 4));
  EXPECT_TRUE(next_buffer(*r, 5));

  auto cs = server->client_stats(id);
  ASSERT_TRUE(cs.has_value());
  // Counted when each delta was skipped, on the strand, before the keyframe was queued.
  EXPECT_EQ(cs->frames_dropped, 2u) << "the two deltas before the keyframe";
  // Counted when a write completes, which may be after the receiver has the bytes.
  EXPECT_TRUE(poll_until([&] {
    cs = server->client_stats(id);
    return cs && cs->frames_sent == 3u;
  })) << "frames_sent "
      << (cs ? cs->frames_sent : 0u);
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 1);
}

TEST_F(ServerReceiverTest, KeyframeWantedDoesNotFireForStreamWithoutDeltaUnits) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  publish(*server, 0, 0);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  publish(*server, 1, 0);
  // Delivered after the join handling (same strand), which is where keyframe_wanted fires.
  ASSERT_TRUE(next_buffer(*r, 1));
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0);
}

// Regression: a client that joined between a new stream's first keyframe and
// its first delta unit was not asked a keyframe for (the stream had no delta
// yet) and waited a whole GOP. It now asks at its first skipped delta, once.
TEST_F(ServerReceiverTest, JoinerBeforeTheFirstDeltaUnitAsksForAKeyframeAtItsFirstSkippedDelta) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);  // the first keyframe; no delta unit seen yet
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0) << "nothing to ask for at join";
  publish(*server, 1, wire::kFlagDeltaUnit);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "no keyframe asked for a joiner that skips delta units";
  publish(*server, 2, wire::kFlagDeltaUnit);
  publish(*server, 3, 0);
  publish(*server, 4, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 3));
  EXPECT_TRUE(next_buffer(*r, 4));
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 1) << "asked more than once";
}

// Issue 14, item 4: clients that connect and close at once must not turn the
// stream into keyframes. Requests are merged and rate-limited (at most one per
// interval; one inside the interval is deferred to its end, not dropped), and
// a deferred request is sent only if a client that asked is still connected.
// A genuine joiner still gets its request within the interval.
TEST_F(ServerReceiverTest, ConnectAndCloseFloodAsksForAtMostOneKeyframePerInterval) {
  ServerConfig cfg = server_config();
  const Clock::duration interval = cfg.keyframe_request_interval;  // the default: 1 s
  ASSERT_GT(interval.count(), 0);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);  // a delta-unit stream: joiners ask for a keyframe
  constexpr size_t kFlood = 40;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < kFlood; ++i) {
    RawTlsClient c(pki_.ca());
    ASSERT_TRUE(c.connect(server->port()));
    const size_t n = i + 1;
    ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() == n; }));
  }  // each closes as it goes out of scope
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.removed.size() == kFlood; }));
  const auto flood_time = Clock::now() - t0;
  // Past the end of the interval in which the flood came, plus margin.
  const size_t intervals = static_cast<size_t>(flood_time / interval) + 1;
  events_.wait([](const EventLog &) { return false; }, interval + 300ms);  // bounded quiet period
  EventLog l = events_.snapshot();
  EXPECT_LE(static_cast<size_t>(l.keyframe_wanted), intervals)
      << kFlood << " connect-and-close clients in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(flood_time).count() << " ms";
  EXPECT_GE(l.keyframe_wanted, 1);
  for (size_t i = 1; i < l.keyframe_times.size(); ++i) {
    EXPECT_GE(l.keyframe_times[i] - l.keyframe_times[i - 1], interval - 50ms)
        << "two keyframe requests within one interval";
  }
  // A genuine joiner: asked for within the interval (plus scheduling slack).
  const int before = l.keyframe_wanted;
  const auto joined = Clock::now();
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  ASSERT_TRUE(
      events_.wait([&](const EventLog &e) { return e.keyframe_wanted > before; }, interval + 500ms))
      << "the genuine joiner's keyframe request was lost";
  EXPECT_LT(events_.snapshot().keyframe_times.back() - joined, interval + 300ms);
}

TEST_F(ServerReceiverTest, CapsPublishedAfterConnectArriveBeforeTheNextBuffer) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  const std::string caps1 = "video/x-h264, width=(int)640";
  const std::string caps2 = "video/x-h264, width=(int)1280";
  server->publish_caps(caps1);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  server->publish_caps(caps2);
  publish(*server, 2, 0);

  EXPECT_TRUE(next_caps(*r, caps1));
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(next_buffer(*r, 1));
  EXPECT_TRUE(next_caps(*r, caps2)) << "new caps must come before the next buffer, exactly once";
  EXPECT_TRUE(next_buffer(*r, 2));
}

TEST_F(ServerReceiverTest, LateJoinerGetsLatestCapsFirst) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto early = connect_receiver(*server);
  ASSERT_TRUE(early);
  const std::string caps1 = "video/x-h264, width=(int)640";
  const std::string caps2 = "video/x-h264, width=(int)1280";
  server->publish_caps(caps1);
  publish(*server, 0, 0);
  server->publish_caps(caps2);
  publish(*server, 1, 0);
  EXPECT_TRUE(next_caps(*early, caps1));
  EXPECT_TRUE(next_buffer(*early, 0));
  EXPECT_TRUE(next_caps(*early, caps2));
  EXPECT_TRUE(next_buffer(*early, 1));

  auto late = connect_receiver(*server);
  ASSERT_TRUE(late);
  publish(*server, 2, 0);
  EXPECT_TRUE(next_caps(*late, caps2)) << "a joiner gets the caps in force, not older ones";
  EXPECT_TRUE(next_buffer(*late, 2));
  EXPECT_TRUE(next_buffer(*early, 2)) << "the early receiver gets no repeated caps";
}

// ===========================================================================
// max-clients.

TEST_F(ServerReceiverTest, MaxClientsRefusesSurplusClientWithServerFullAndKeepsTheFirst) {
  ServerConfig cfg = server_config();
  cfg.max_clients = 1;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  auto first = connect_receiver(*server);
  ASSERT_TRUE(first);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(next_caps(*first, kCaps));
  EXPECT_TRUE(next_buffer(*first, 0));

  auto second = Receiver::start(receiver_config(server->port()));
  Received m;
  ASSERT_TRUE(next_of_type(*second, MessageType::kError, m));
  EXPECT_EQ(m.error_code, static_cast<uint16_t>(wire::ErrorCode::kServerFull));
  EXPECT_FALSE(m.error_text.empty());
  EXPECT_EQ(server->stats().refused, 1u);

  publish(*server, 1, 0);
  EXPECT_TRUE(next_buffer(*first, 1)) << "the first client must keep receiving";
  EventLog l = events_.snapshot();
  EXPECT_EQ(l.added.size(), 1u);
  EXPECT_TRUE(l.failed.empty());
}

// The refused session was never added (client_added, num_clients), so it must
// not be removed either. Checked after stop(), when every session has closed
// and every callback has run, so the outcome does not depend on timing.
// Regression: a refused session sets ready_ to write its ERROR, and close()
// used to report it as was_ready: ready_count went below zero and
// client_removed fired for a client never added.
TEST_F(ServerReceiverTest, RefusedClientIsNeverReportedRemovedNorCounted) {
  ServerConfig cfg = server_config();
  cfg.max_clients = 1;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  auto first = connect_receiver(*server);
  ASSERT_TRUE(first);
  auto second = Receiver::start(receiver_config(server->port()));
  Received m;
  ASSERT_TRUE(next_of_type(*second, MessageType::kError, m));
  publish(*server, 0, 0);
  EXPECT_TRUE(next_buffer(*first, 0));

  server->stop();
  EventLog l = events_.snapshot();
  ASSERT_EQ(l.added.size(), 1u);
  for (const auto &r : l.removed) {
    EXPECT_TRUE(l.was_added(r.info.id))
        << "client_removed for client " << r.info.id << " (" << remove_reason_name(r.reason) << ": "
        << r.error << ") which was never added";
  }
  EXPECT_EQ(l.removed.size(), 1u);
  EXPECT_EQ(server->num_clients(), 0u) << "connected-client count went wrong (underflow?)";
  EXPECT_EQ(server->stats().clients, 0u);
}

// ===========================================================================
// Slow consumers: bounded queues, drops for that client only, publish never blocks.

struct SlowConsumerLimits {
  uint32_t buffers;
  uint64_t bytes;
};

// Samples every client's queue depth on its own thread while the test runs
// (the queues fill on the I/O thread after publish_buffer() has returned).
class QueueSampler {
 public:
  explicit QueueSampler(const Server &server)
      : thread_([this, &server] {
          const auto deadline = Clock::now() + 20s;
          for (int i = 0; i < 5'000'000 && !done_.load() && Clock::now() < deadline; ++i) {
            for (const ClientStats &cs : server.client_stats()) {
              max_buffers_ = std::max(max_buffers_, cs.queue_buffers);
              max_bytes_ = std::max(max_bytes_, cs.queue_bytes);
            }
            samples_++;
            std::this_thread::yield();  // two CPUs may be all the machine has
          }
        }) {}
  ~QueueSampler() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Valid after stop().
  uint64_t max_buffers() const { return max_buffers_; }
  uint64_t max_bytes() const { return max_bytes_; }
  uint64_t samples() const { return samples_; }

 private:
  std::atomic<bool> done_{false};
  uint64_t max_buffers_ = 0, max_bytes_ = 0, samples_ = 0;  // sampler thread until joined
  std::thread thread_;
};

// How the slow-consumer tests publish.
enum class Pace {
  kBurst,     // all buffers at full speed: every client's queue overflows, the fast one's too
  kLockstep,  // each buffer once the fast reader got the previous one: only the slow client
              // overflows
};

class SlowConsumerTest : public ServerReceiverTest {
 protected:
  static constexpr uint64_t kCount = 400;
  static constexpr size_t kSize = size_t{64} << 10;
  static constexpr uint64_t kLast = kCount - 1;

  // A keyframe every 10 buffers and as the last one (so it is never skipped).
  static uint32_t flags_of(uint64_t i) {
    return i % 10 == 0 || i == kLast ? 0u : static_cast<uint32_t>(wire::kFlagDeltaUnit);
  }

  // Reads buffers until the last one, bounded in count and time.
  static std::vector<Received> read_to_last(Receiver &r) {
    std::vector<Received> buffers;
    const auto deadline = Clock::now() + 10s;
    for (uint64_t i = 0; i < kCount + 10; ++i) {
      Received m;
      Error e;
      NextStatus st = r.next(m, e, deadline);
      if (st != NextStatus::kMessage) {
        ADD_FAILURE() << "reader stopped with " << describe(st, e);
        break;
      }
      if (m.type != MessageType::kBuffer) continue;
      buffers.push_back(std::move(m));
      if (buffers.back().meta.sequence == kLast) break;
    }
    return buffers;
  }

  // One receiver does not read until the end (its own queue fills, then TCP
  // pushes back) while another reads everything.
  void run(SlowConsumerLimits limits, Pace pace) {
    ServerConfig cfg = server_config();
    cfg.queue_max_buffers = limits.buffers;
    cfg.queue_max_bytes = limits.bytes;
    auto server = start_server(cfg);
    ASSERT_TRUE(server);
    uint64_t slow_id = 0, fast_id = 0;
    auto slow = connect_receiver(*server, &slow_id);
    ASSERT_TRUE(slow);
    auto fast = connect_receiver(*server, &fast_id);
    ASSERT_TRUE(fast);
    server->publish_caps(kCaps);
    ASSERT_TRUE(next_caps(*fast, kCaps));

    QueueSampler sampler(*server);
    std::future<std::vector<Received>> fast_reader;
    if (pace == Pace::kBurst) {
      fast_reader = std::async(std::launch::async, [&] { return read_to_last(*fast); });
    }
    std::vector<Received> fast_buffers;
    Clock::duration publish_total{0}, publish_max{0};
    std::vector<uint8_t> data(kSize);
    for (uint64_t i = 0; i < kCount; ++i) {
      for (size_t b = 0; b < kSize; ++b) data[b] = pattern_byte(i, b);
      const auto t = Clock::now();
      server->publish_buffer(meta_for(i, flags_of(i)), data.data(), kSize);
      const auto took = Clock::now() - t;
      publish_total += took;
      publish_max = std::max(publish_max, took);
      if (pace == Pace::kLockstep) {
        Received m;
        ASSERT_TRUE(next_of_type(*fast, MessageType::kBuffer, m)) << "buffer " << i;
        ASSERT_EQ(m.meta.sequence, i) << "the fast reader lost a buffer while keeping up";
        fast_buffers.push_back(std::move(m));
      }
    }
    EXPECT_LT(publish_total, 2s) << "publish_buffer waited on a client";
    EXPECT_LT(publish_max, 500ms) << "one publish_buffer call waited on a client";
    if (pace == Pace::kBurst) fast_buffers = fast_reader.get();

    ASSERT_FALSE(fast_buffers.empty());
    EXPECT_EQ(fast_buffers.back().meta.sequence, kLast)
        << "the fast reader did not get the last buffer";
    EXPECT_TRUE(consistent_gop_sequence(fast_buffers));
    for (const Received &m : fast_buffers) ASSERT_TRUE(data_is(m, m.meta.sequence, kSize));

    // Every buffer has been handled for the slow client once sent + dropped +
    // queued reaches the count. Its strand may still be catching up, and no
    // callback says when it is done.
    std::optional<ClientStats> held;
    EXPECT_TRUE(poll_until([&] {
      held = server->client_stats(slow_id);
      return held && held->frames_sent + held->frames_dropped + held->queue_buffers >= kCount;
    })) << "the slow client's buffers were never all sent, dropped or queued";
    ASSERT_TRUE(held);
    EXPECT_GT(held->frames_dropped, 0u) << "the slow client never dropped a frame";
    EXPECT_LE(held->queue_buffers, limits.buffers);
    EXPECT_LE(held->queue_bytes, limits.bytes);
    if (pace == Pace::kLockstep) {
      // frames_sent counts completed writes, which may trail what the reader has.
      std::optional<ClientStats> fs;
      EXPECT_TRUE(poll_until([&] {
        fs = server->client_stats(fast_id);
        return fs && fs->frames_sent == kCount;
      })) << "fast client frames_sent "
          << (fs ? fs->frames_sent : 0u);
      ASSERT_TRUE(fs);
      EXPECT_EQ(fs->frames_dropped, 0u) << "the fast client paid for the slow one";
    }

    // Now the slow client drains what reached it: also a consistent stream
    // that ends with the last keyframe.
    std::vector<Received> slow_buffers = read_to_last(*slow);
    sampler.stop();
    ASSERT_FALSE(slow_buffers.empty());
    EXPECT_EQ(slow_buffers.back().meta.sequence, kLast);
    EXPECT_TRUE(consistent_gop_sequence(slow_buffers));
    EXPECT_LT(slow_buffers.size(), kCount);
    for (const Received &m : slow_buffers) ASSERT_TRUE(data_is(m, m.meta.sequence, kSize));

    EXPECT_GT(sampler.samples(), 0u);
    EXPECT_LE(sampler.max_buffers(), limits.buffers) << "a queue exceeded its buffer limit";
    EXPECT_LE(sampler.max_bytes(), limits.bytes) << "a queue exceeded its byte limit";

    // The last write's completion may trail the reader.
    std::optional<ClientStats> slow_stats;
    EXPECT_TRUE(poll_until([&] {
      slow_stats = server->client_stats(slow_id);
      return slow_stats && slow_stats->frames_sent == slow_buffers.size();
    })) << "slow client frames_sent "
        << (slow_stats ? slow_stats->frames_sent : 0u) << " != buffers it read "
        << slow_buffers.size();
    ASSERT_TRUE(slow_stats);
    EXPECT_EQ(slow_stats->frames_sent + slow_stats->frames_dropped, kCount)
        << "every buffer is either sent or dropped for a client";
    ServerStats st = server->stats();
    EXPECT_EQ(st.buffers_published, kCount);
    EXPECT_GE(st.frames_dropped, slow_stats->frames_dropped);
    EXPECT_EQ(events_.snapshot().removed.size(), 0u) << "nobody is disconnected for being slow";
  }
};

TEST_F(SlowConsumerTest, BurstRespectsBufferLimitAndNeverBlocksPublish) {
  run({8, 1u << 20}, Pace::kBurst);
}

TEST_F(SlowConsumerTest, BurstRespectsByteLimitAndNeverBlocksPublish) {
  run({1000, uint64_t{256} << 10}, Pace::kBurst);
}

TEST_F(SlowConsumerTest, StalledClientDropsOnlyItsOwnFramesWithinBufferLimit) {
  run({8, 1u << 20}, Pace::kLockstep);
}

TEST_F(SlowConsumerTest, StalledClientDropsOnlyItsOwnFramesWithinByteLimit) {
  run({1000, uint64_t{256} << 10}, Pace::kLockstep);
}

// ===========================================================================
// Receiver: cancel, timeouts, connection and verification failures.

TEST_F(ServerReceiverTest, CancelWakesBlockedNextAtOnceAndClearCancelResumes) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);

  std::promise<void> entering;
  auto blocked = std::async(std::launch::async, [&] {
    Received m;
    Error e;
    entering.set_value();
    const auto t = Clock::now();
    NextStatus st = r->next(m, e, Clock::now() + 30s);
    return std::make_pair(st, Clock::now() - t);
  });
  entering.get_future().wait();
  const auto cancelled_at = Clock::now();
  r->cancel();
  if (blocked.wait_for(1s) != std::future_status::ready) {
    ADD_FAILURE() << "next() still blocked 1 s after cancel()";
    server->publish_caps(kCaps);  // wake it another way so the test ends now
  }
  auto [status, waited] = blocked.get();
  EXPECT_EQ(status, NextStatus::kCancelled);
  EXPECT_LT(Clock::now() - cancelled_at, 1s);
  EXPECT_LT(waited, 1s);

  // Still cancelled: returns at once even with a long deadline.
  Received m;
  Error e;
  const auto t = Clock::now();
  EXPECT_EQ(r->next(m, e, Clock::now() + kWait), NextStatus::kCancelled);
  EXPECT_LT(Clock::now() - t, 1s);

  r->clear_cancel();
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(r->connected());
}

TEST_F(ServerReceiverTest, NextReturnsTimeoutAtItsDeadlineWhenNothingArrives) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  Received m;
  Error e;
  const auto t = Clock::now();
  EXPECT_EQ(r->next(m, e, t + 100ms), NextStatus::kTimeout);
  EXPECT_GE(Clock::now() - t, 100ms);
  EXPECT_LT(Clock::now() - t, 2s);
}

TEST_F(ServerReceiverTest, ReceiverReadTimeoutFailsWhenServerIsSilent) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  ReceiverConfig rc = receiver_config(server->port());
  rc.read_timeout = 300ms;
  auto r = connect_receiver(rc);
  ASSERT_TRUE(r);
  Error e;
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kTimeout) << e.message;
}

TEST_F(ServerReceiverTest, ReceiverConnectTimeoutFailsWhenPeerNeverHandshakes) {
  TcpSocket listener;  // accepts TCP (backlog) but never speaks TLS
  ASSERT_TRUE(listener.bind_any(/*listen=*/true));
  ReceiverConfig rc = receiver_config(listener.port());
  rc.connect_timeout = 300ms;
  auto r = Receiver::start(rc);
  Error e;
  const auto t = Clock::now();
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kTimeout) << e.message;
  EXPECT_LT(Clock::now() - t, 3s);
  EXPECT_FALSE(r->connected());
}

TEST_F(ServerReceiverTest, ConnectToPortWithNothingListeningFailsWithNetworkError) {
  TcpSocket reserved;  // bound but not listening: connections are refused
  ASSERT_TRUE(reserved.bind_any(/*listen=*/false));
  auto r = Receiver::start(receiver_config(reserved.port()));
  Error e;
  ASSERT_TRUE(next_error(*r, e));
  EXPECT_EQ(e.kind, Error::Kind::kNetwork) << e.message;
  EXPECT_NE(e.message.find("cannot connect"), std::string::npos) << e.message;
}

// A failing receiver against a running server, while a good one keeps receiving.
class FailingReceiverTest : public ServerReceiverTest {
 protected:
  // Starts the server and a good receiver; the caller then tries a bad one.
  void start(const ServerConfig &cfg, const ReceiverConfig *good_config = nullptr) {
    server_ = start_server(cfg);
    ASSERT_TRUE(server_);
    good_ = good_config ? connect_receiver(with_port(*good_config)) : connect_receiver(*server_);
    ASSERT_TRUE(good_);
  }
  ReceiverConfig with_port(ReceiverConfig c) const {
    c.port = server_->port();
    return c;
  }
  // Runs the bad receiver to its terminal error; checks the server never added
  // it and the good receiver still gets what is published afterwards.
  Error fail_bad(const ReceiverConfig &bad_config, bool server_sees_handshake_failure = true) {
    const size_t failed_before = events_.snapshot().failed.size();
    auto bad = Receiver::start(with_port(bad_config));
    Error e;
    EXPECT_TRUE(next_error(*bad, e));
    if (server_sees_handshake_failure) {
      EXPECT_TRUE(events_.wait([&](const EventLog &l) { return l.failed.size() > failed_before; }))
          << "server reported no handshake failure";
    }
    EXPECT_EQ(events_.snapshot().added.size(), 1u) << "the bad receiver was added";
    expect_still_receives(*server_, *good_, next_index_++);
    return e;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Receiver> good_;
  uint64_t next_index_ = 0;
};

TEST_F(FailingReceiverTest, ServerFromUntrustedCaFailsVerification) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.tls.ca_file = pki_.other_ca();
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("verification failed"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, WrongServerNameFailsWithHostnameMismatch) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.server_name = "wrong.example";
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("hostname mismatch"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ExpiredServerCertificateFailsVerification) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.expired_cert();
  cfg.tls.key_file = pki_.expired_key();
  server_ = start_server(cfg);
  ASSERT_TRUE(server_);
  auto bad = Receiver::start(receiver_config(server_->port()));
  Error e;
  ASSERT_TRUE(next_error(*bad, e));
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("expired"), std::string::npos) << e.message;
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  EXPECT_TRUE(events_.snapshot().added.empty());
}

// OpenSSL falls back to the subject CN when a certificate has no DNS
// subjectAltName; the receiver must not (issue 14, item 11).
TEST_F(FailingReceiverTest, ServerCertificateWithCommonNameOnlyAndNoSanIsRefused) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.cn_only_cert();
  cfg.tls.key_file = pki_.cn_only_key();
  server_ = start_server(cfg);
  ASSERT_TRUE(server_);
  ReceiverConfig rc = receiver_config(server_->port());
  rc.server_name = "localhost";  // the certificate's CN, in no subjectAltName
  auto bad = Receiver::start(rc);
  Error e;
  ASSERT_TRUE(next_error(*bad, e));
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("hostname mismatch"), std::string::npos) << e.message;
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  EXPECT_TRUE(events_.snapshot().added.empty());
}

TEST_F(FailingReceiverTest, Tls12OnlyReceiverIsRefusedByDefaultTls13Server) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.tls.min_version = tls::Version::kTls12;
  bad.tls.max_version = tls::Version::kTls12;
  Error e = fail_bad(bad);
  EXPECT_TRUE(e.kind == Error::Kind::kPeerRefused || e.kind == Error::Kind::kTls)
      << kind_name(e.kind) << ": " << e.message;
  EXPECT_NE(e.message.find("TLS version"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, Tls12ReceiverIsAcceptedWhenServerAllowsTls12) {
  ServerConfig cfg = server_config();
  cfg.tls.min_version = tls::Version::kTls12;
  start(cfg);
  ReceiverConfig old_client = with_port(receiver_config(0));
  old_client.tls.min_version = tls::Version::kTls12;
  old_client.tls.max_version = tls::Version::kTls12;
  auto r = connect_receiver(old_client);
  ASSERT_TRUE(r);
  publish(*server_, 0, 0);
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(next_buffer(*good_, 0));
}

TEST_F(ServerReceiverTest, ReceiverWithMissingCaFileFailsWithSettingsError) {
  ReceiverConfig rc = receiver_config(1);
  rc.tls.ca_file = pki_.path("no-such-ca.pem");
  auto r = Receiver::start(rc);
  Error e;
  ASSERT_TRUE(next_error(*r, e, 0, 1s));
  EXPECT_EQ(e.kind, Error::Kind::kSettings) << e.message;
  EXPECT_NE(e.message.find(rc.tls.ca_file), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ReceiverWithoutCertificateIsRefusedUnderMutualTls) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  Error e = fail_bad(receiver_config(0));
  EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
  EXPECT_NE(e.message.find("client certificate"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ReceiverWithRogueCertificateIsRefusedUnderMutualTls) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  ReceiverConfig bad = receiver_config(0);
  bad.tls.cert_file = pki_.rogue_client_cert();
  bad.tls.key_file = pki_.rogue_client_key();
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
  const EventLog l = events_.snapshot();
  ASSERT_FALSE(l.failed.empty());
  EXPECT_EQ(l.failed.back().error.kind, Error::Kind::kVerify) << l.failed.back().error.message;
}

TEST_F(FailingReceiverTest, TrustedClientCertificateIsAcceptedAndItsSubjectReported) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  const EventLog l = events_.snapshot();
  ASSERT_EQ(l.added.size(), 1u);
  EXPECT_NE(l.added[0].subject.find("client1"), std::string::npos) << l.added[0].subject;
  auto cs = server_->client_stats(l.added[0].id);
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->info.subject, l.added[0].subject);
  expect_still_receives(*server_, *good_, 0);
}

TEST_F(FailingReceiverTest, OversizedMessageIsProtocolErrorNamingTheMaximum) {
  start(server_config());
  ReceiverConfig small = with_port(receiver_config(0));
  small.max_payload = 1024;
  auto r = connect_receiver(small);
  ASSERT_TRUE(r);
  server_->publish_caps(kCaps);
  publish(*server_, 0, 0, 4096);
  Error e;
  ASSERT_TRUE(next_error(*r, e, /*max_skip=*/1));  // the caps fit
  EXPECT_EQ(e.kind, Error::Kind::kProtocol) << e.message;
  EXPECT_NE(e.message.find("maximum"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("1024"), std::string::npos) << e.message;
  // The good receiver (default maximum) got the large buffer.
  EXPECT_TRUE(next_caps(*good_, kCaps));
  EXPECT_TRUE(next_buffer(*good_, 0, 4096));
  expect_still_receives(*server_, *good_, 1);
}

// ===========================================================================
// Server lifecycle.

TEST_F(ServerReceiverTest, StopDisconnectsReceiversPromptlyAndReportsServerStopped) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 2; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  publish(*server, 0, 0);
  for (auto &r : rx) ASSERT_TRUE(next_buffer(*r, 0));
  TcpSocket handshaking;  // a connection still in its handshake (default timeout: 10 s)
  ASSERT_TRUE(handshaking.connect_to(server->port()));

  auto t = Clock::now();
  server->stop();
  EXPECT_LT(Clock::now() - t, 3s);
  t = Clock::now();
  server->stop();  // idempotent
  EXPECT_LT(Clock::now() - t, 1s);

  // Clients that keep up are told why before the connection closes.
  for (auto &r : rx) {
    Received m;
    Error e;
    const auto t0 = Clock::now();
    ASSERT_EQ(r->next(m, e, Clock::now() + 2s), NextStatus::kMessage) << e.message;
    EXPECT_LT(Clock::now() - t0, 1s);
    ASSERT_EQ(m.type, MessageType::kError);
    EXPECT_EQ(m.error_code, static_cast<uint16_t>(tlsframe::wire::ErrorCode::kShuttingDown));
    EXPECT_NE(m.error_text.find("shutting down"), std::string::npos) << m.error_text;
    EXPECT_FALSE(r->connected());
  }
  // stop() joined the I/O threads, so every callback has already run.
  const EventLog l = events_.snapshot();
  ASSERT_EQ(l.removed.size(), 2u);
  for (const auto &r : l.removed) {
    EXPECT_EQ(r.reason, RemoveReason::kServerStopped);
    EXPECT_TRUE(l.was_added(r.info.id));
  }
  EXPECT_NE(l.removed[0].info.id, l.removed[1].info.id);
  EXPECT_EQ(server->num_clients(), 0u);
  EXPECT_TRUE(handshaking.wait_peer_closed(1s)) << "a handshaking connection outlived stop()";

  // Publishing to a stopped server is harmless.
  server->publish_caps(kCaps);
  publish(*server, 1, 0);
  t = Clock::now();
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(2000)));
  EXPECT_LT(Clock::now() - t, 1s);

  // The listener is closed too.
  auto late = Receiver::start(receiver_config(server->port()));
  Error e;
  ASSERT_TRUE(next_error(*late, e));
  EXPECT_EQ(e.kind, Error::Kind::kNetwork) << e.message;
}

TEST_F(ServerReceiverTest, StartFailsWithSettingsErrorNamingMissingCertFile) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.path("does-not-exist.pem");
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kSettings);
  EXPECT_NE(r.error().message.find(cfg.tls.cert_file), std::string::npos) << r.error().message;
}

TEST_F(ServerReceiverTest, StartFailsWithSettingsErrorWhenKeyDoesNotMatchCert) {
  ServerConfig cfg = server_config();
  cfg.tls.key_file = pki_.client_key();
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kSettings);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;
}

TEST_F(ServerReceiverTest, StartFailsWithNetworkErrorWhenPortInUse) {
  auto first = start_server(server_config());
  ASSERT_TRUE(first);
  ServerConfig cfg = server_config();
  cfg.port = first->port();
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kNetwork);
  EXPECT_NE(r.error().message.find("cannot listen"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(std::to_string(cfg.port)), std::string::npos)
      << r.error().message;
}

// ===========================================================================
// Misbehaving peers.

TEST_F(ServerReceiverTest, NonTlsPeersFailHandshakeAndNeverDisturbGoodClient) {
  ServerConfig cfg = server_config();
  cfg.handshake_timeout = 300ms;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good);
  uint64_t index = 0;

  // Connects a raw peer, lets it misbehave, and waits for the server to give up on it.
  auto expect_handshake_failure = [&](const char *what, const std::function<void(TcpSocket &)> &act,
                                      Error::Kind *kind) {
    SCOPED_TRACE(what);
    TcpSocket peer;
    ASSERT_TRUE(peer.connect_to(server->port())) << std::strerror(errno);
    const std::string address = peer.address();
    act(peer);
    ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.failure_from(address); }))
        << "no handshake_failed for " << address;
    *kind = events_.snapshot().failure_from(address)->error.kind;
    if (peer.fd() >= 0) {
      EXPECT_TRUE(peer.wait_peer_closed(kWait)) << "server kept the connection open";
    }
    expect_still_receives(*server, *good, index++);
  };

  Error::Kind kind{};
  expect_handshake_failure(
      "plaintext HTTP",
      [](TcpSocket &s) {
        const char req[] = "GET / HTTP/1.0\r\n\r\n";
        ASSERT_TRUE(s.send_all(req, sizeof req - 1));
      },
      &kind);
  EXPECT_EQ(kind, Error::Kind::kTls);

  expect_handshake_failure(
      "random bytes",
      [](TcpSocket &s) {
        std::mt19937 rng(12345);
        std::vector<uint8_t> junk(4096);
        for (auto &b : junk) b = static_cast<uint8_t>(rng());
        junk[0] = 0x47;  // not a TLS record type, whatever the generator gives
        ASSERT_TRUE(s.send_all(junk.data(), junk.size()));
      },
      &kind);
  EXPECT_EQ(kind, Error::Kind::kTls);

  expect_handshake_failure(
      "truncated ClientHello",
      [](TcpSocket &s) {
        // A handshake record announcing 512 bytes, the start of a ClientHello, then close.
        const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
        ASSERT_TRUE(s.send_all(hello, sizeof hello));
        s.close();
      },
      &kind);
  EXPECT_TRUE(kind == Error::Kind::kClosed || kind == Error::Kind::kTls) << kind_name(kind);

  const auto t = Clock::now();
  expect_handshake_failure(
      "idle", [](TcpSocket &) {}, &kind);
  EXPECT_EQ(kind, Error::Kind::kTimeout);
  EXPECT_LT(Clock::now() - t, 3s);

  const EventLog l = events_.snapshot();
  EXPECT_EQ(l.added.size(), 1u) << "a bad peer was reported as a client";
  EXPECT_EQ(l.failed.size(), 4u);
  EXPECT_EQ(server->stats().handshake_failures, 4u);
  EXPECT_EQ(server->num_clients(), 1u);
  EXPECT_TRUE(good->connected());
}

TEST_F(ServerReceiverTest, ClientSendingApplicationDataIsRemovedAsProtocolViolation) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good);
  RawTlsClient chatty(pki_.ca());
  ASSERT_TRUE(chatty.connect(server->port()));
  const std::string address = chatty.socket().address();
  ASSERT_TRUE(events_.wait([&](const EventLog &l) {
    return std::any_of(l.added.begin(), l.added.end(),
                       [&](const ClientInfo &c) { return c.address == address; });
  }));
  ASSERT_TRUE(chatty.write("hello, server"));
  ASSERT_TRUE(events_.wait([&](const EventLog &l) {
    return std::any_of(l.removed.begin(), l.removed.end(),
                       [&](const RemovedEvent &r) { return r.info.address == address; });
  }));
  for (const auto &r : events_.snapshot().removed) {
    EXPECT_EQ(r.info.address, address);
    EXPECT_EQ(r.reason, RemoveReason::kProtocol);
  }
  expect_still_receives(*server, *good, 0);
}

TEST_F(ServerReceiverTest, ClientTimeoutDropsPeerThatStopsReading) {
  ServerConfig cfg = server_config();
  cfg.client_timeout = 500ms;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  uint64_t good_id = 0;
  auto good = connect_receiver(*server, &good_id);
  ASSERT_TRUE(good);

  RawTlsClient stuck(pki_.ca());
  stuck.socket().set_receive_buffer(4096);
  ASSERT_TRUE(stuck.connect(server->port()));
  const std::string address = stuck.socket().address();
  ASSERT_TRUE(events_.wait([&](const EventLog &l) {
    return std::any_of(l.added.begin(), l.added.end(),
                       [&](const ClientInfo &c) { return c.address == address; });
  }));

  // 24 MiB in 1 MiB keyframes: far more than the kernel buffers hold, and
  // within the default queue limits, so only the timeout can drop the client.
  constexpr uint64_t kCount = 24;
  constexpr size_t kSize = 1u << 20;
  auto reader = std::async(std::launch::async, [&good] {
    for (uint64_t i = 0; i < kCount; ++i) {
      if (!next_buffer(*good, i, kSize)) return i;
    }
    return kCount;
  });
  for (uint64_t i = 0; i < kCount; ++i) publish(*server, i, 0, kSize);

  ASSERT_TRUE(events_.wait([&](const EventLog &l) {
    return std::any_of(l.removed.begin(), l.removed.end(),
                       [&](const RemovedEvent &r) { return r.info.address == address; });
  })) << "the client that stopped reading was not dropped";
  const EventLog l = events_.snapshot();
  for (const auto &r : l.removed) {
    EXPECT_EQ(r.info.address, address) << "only the stuck client is dropped";
    EXPECT_EQ(r.reason, RemoveReason::kTimeout);
  }
  EXPECT_EQ(reader.get(), kCount) << "the reading client missed buffers";
  EXPECT_TRUE(good->connected());
  EXPECT_EQ(server->num_clients(), 1u);
}

// Kernel send queue (tx_queue, bytes) of each TCP socket on 127.0.0.1 whose
// local port is `port`, by remote port, from /proc/net/tcp.
std::map<uint16_t, uint64_t> send_queues(uint16_t port) {
  std::map<uint16_t, uint64_t> out;
  FILE *f = std::fopen("/proc/net/tcp", "r");
  if (!f) return out;
  char line[512];
  for (int i = 0; i < 100000 && std::fgets(line, sizeof line, f); ++i) {
    unsigned local_ip = 0, local_port = 0, remote_ip = 0, remote_port = 0, state = 0;
    unsigned long tx = 0, rx = 0;
    if (std::sscanf(line, " %*d: %8X:%4X %8X:%4X %2X %8lX:%8lX", &local_ip, &local_port, &remote_ip,
                    &remote_port, &state, &tx, &rx) != 7) {
      continue;  // the header line
    }
    if (local_port == port && remote_port != 0) out[static_cast<uint16_t>(remote_port)] = tx;
  }
  std::fclose(f);
  return out;
}

// Clients that never read (issue 14, item 3): under the server's defaults,
// what the kernel holds for each is bounded by the send buffer (SO_SNDBUF;
// Linux doubles the value set), not autotuned up to tcp_wmem's maximum (4 MB),
// and each is dropped once its writes made no progress for the default
// client timeout. A reading client meanwhile gets every buffer.
TEST_F(ServerReceiverTest, StalledClientsHoldABoundedSendQueueAndAreDroppedUnderTheDefaults) {
  ServerConfig cfg = server_config();  // defaults: client_timeout, send_buffer_size
  ASSERT_GT(cfg.client_timeout.count(), 0) << "no default write-progress timeout";
  ASSERT_GT(cfg.send_buffer_size, 0) << "no default send buffer size";
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good);
  constexpr size_t kStalled = 6;
  std::vector<std::unique_ptr<RawTlsClient>> stalled;
  std::vector<uint16_t> stalled_ports;
  for (size_t i = 0; i < kStalled; ++i) {
    stalled.push_back(std::make_unique<RawTlsClient>(pki_.ca()));
    ASSERT_TRUE(stalled.back()->connect(server->port()));
    stalled_ports.push_back(bound_port(stalled.back()->socket().fd()));
  }
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() == kStalled + 1; }));

  // 150 KB keyframes (a 720p JPEG), read by the good receiver one by one:
  // 15 MB offered to each stalled client, far beyond any kernel buffer.
  constexpr size_t kSize = 150000;
  constexpr uint64_t kCount = 100;
  for (uint64_t i = 0; i < kCount; ++i) {
    publish(*server, i, 0, kSize);
    ASSERT_TRUE(next_buffer(*good, i, kSize));
  }
  const auto t_sent = Clock::now();
  // The queues fill within milliseconds on loopback; sample until every
  // stalled connection holds something (bounded), then check the bound.
  std::map<uint16_t, uint64_t> queues;
  for (int i = 0; i < 100; ++i) {
    queues = send_queues(server->port());
    bool all = std::all_of(stalled_ports.begin(), stalled_ports.end(),
                           [&](uint16_t p) { return queues.count(p) && queues[p] > 0; });
    if (all) break;
    std::this_thread::sleep_for(10ms);  // polling interval, not synchronisation
  }
  const uint64_t bound = 2 * static_cast<uint64_t>(cfg.send_buffer_size);
  for (uint16_t p : stalled_ports) {
    SCOPED_TRACE("stalled client port " + std::to_string(p));
    ASSERT_TRUE(queues.count(p)) << "no server socket found for it";
    EXPECT_GT(queues[p], 0u) << "not stalled?";
    EXPECT_LE(queues[p], bound) << "kernel send queue beyond 2 x send_buffer_size";
  }
  // Then every stalled client is dropped for making no progress, the good one stays.
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.removed.size() == kStalled; },
                           cfg.client_timeout + kWait))
      << "stalled clients were not dropped at the default client timeout";
  EXPECT_GE(Clock::now() - t_sent, cfg.client_timeout - 1s);
  for (const auto &r : events_.snapshot().removed) EXPECT_EQ(r.reason, RemoveReason::kTimeout);
  EXPECT_TRUE(good->connected());
  EXPECT_EQ(server->num_clients(), 1u);
  // Dropped means the kernel lets go too: a plain close() would leave each
  // socket orphaned in FIN_WAIT1, still holding its send queue while the
  // peer's window stays shut.
  uint64_t left = 0;
  for (int i = 0; i < 200; ++i) {
    queues = send_queues(server->port());
    left = 0;
    for (uint16_t p : stalled_ports) left += queues.count(p) ? queues[p] : 0;
    if (left == 0) break;
    std::this_thread::sleep_for(10ms);  // polling interval, not synchronisation
  }
  EXPECT_EQ(left, 0u) << "dropped clients' kernel send queues were not released";
}

// A TCP connection from `source` (any 127/8 address: Linux routes all of it
// to lo) to 127.0.0.1:port that sends nothing; -1 on failure.
int connect_from(const char *source, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to = loopback(port);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Handshake slots exhausted from one address (issue 14, item 2): 200 idle
// connections from 127.0.0.2 against a server allowing 64 handshakes in all.
// A client from 127.0.0.1 still completes its handshake and gets a buffer at
// its first attempt, and the idle connections are closed at the hello
// timeout, well before the handshake timeout.
TEST_F(ServerReceiverTest, IdleFloodFromOneAddressLeavesHandshakeSlotsForOthers) {
  ServerConfig cfg = server_config();
  cfg.max_handshakes = 64;  // per address: the default
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  constexpr int kFlood = 200;
  std::vector<int> flood;
  for (int i = 0; i < kFlood; ++i) {
    int fd = connect_from("127.0.0.2", server->port());
    ASSERT_GE(fd, 0) << "cannot connect from 127.0.0.2: " << std::strerror(errno);
    flood.push_back(fd);
  }
  // Let the server accept the flood first (bounded: refused connections are
  // counted; before the fix 200 - 64 of them are), so the good client comes after it.
  for (int i = 0; i < 250 && server->stats().refused + 64 < static_cast<uint64_t>(kFlood); ++i) {
    std::this_thread::sleep_for(2ms);  // polling interval, not synchronisation
  }
  const auto t0 = Clock::now();
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good) << "a client from another address was refused during the flood";
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(next_caps(*good, kCaps));
  EXPECT_TRUE(next_buffer(*good, 0));
  EXPECT_LT(Clock::now() - t0, 2s);
  // The idle connections are closed at the hello timeout, not the handshake timeout.
  for (int fd : flood) {
    EXPECT_TRUE(test::closed_by_peer(fd, t0 + cfg.handshake_timeout - 2s))
        << "an idle connection outlived the hello timeout";
  }
  for (int fd : flood) ::close(fd);
}

// The total handshake limit stays below the open-file limit: with a soft
// limit of 1024 (a common default), half of it at most.
TEST_F(ServerReceiverTest, MaxHandshakesIsClampedToHalfTheOpenFileLimit) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 1024) GTEST_SKIP() << "hard limit < 1024";
  rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ServerConfig cfg = server_config();
  cfg.max_handshakes = 4096;
  auto server = start_server(cfg);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->max_handshakes(), 512u);
  cfg.max_handshakes = 100;  // below the bound: kept
  auto second = start_server(cfg);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->max_handshakes(), 100u);
}

}  // namespace
}  // namespace tlsframe
