// The fixture of the core server tests (tests/core/test_*.cpp, one topic
// each): a Server and Receivers over real TLS on loopback, no GStreamer.
//
// Every test starts its own Server on 127.0.0.1 with port 0 and a PKI made at
// test time. Nothing sleeps to synchronise: server-side conditions are awaited
// through the ServerCallbacks (Events below), receiver-side ones through
// Receiver::next() deadlines; the few stats without a callback are polled in a
// loop bounded in time. Every wait has a deadline, so a broken core makes a
// test fail, never hang.
#pragma once

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
const char *kind_name(Error::Kind k);
void PrintTo(Error::Kind k, std::ostream *os);
void PrintTo(RemoveReason r, std::ostream *os);
void PrintTo(NextStatus s, std::ostream *os);

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

uint8_t pattern_byte(uint64_t index, size_t i);

std::vector<uint8_t> pattern(uint64_t index, size_t size);

wire::BufferMeta meta_for(uint64_t index, uint32_t flags);

uint64_t index_of(const wire::BufferMeta &m);

void publish(Server &server, uint64_t index, uint32_t flags, size_t size = 256);

const uint8_t *data_of(const Received &m);

::testing::AssertionResult data_is(const Received &m, uint64_t index, size_t size);

bool is_delta(const Received &m);

// ---------------------------------------------------------------------------
// Receiver helpers.

std::string describe(NextStatus st, const Error &e);

// The next message of the given type within the timeout.
::testing::AssertionResult next_of_type(Receiver &r, MessageType type, Received &out,
                                        Clock::duration timeout = kWait);

// The next message is the caps string `caps`.
::testing::AssertionResult next_caps(Receiver &r, const std::string &caps);

// The next message is the buffer published by publish(server, index, flags, size).
::testing::AssertionResult next_buffer(Receiver &r, uint64_t index, size_t size = 256);

// The terminal error of the receiver, skipping at most max_skip messages
// (e.g. caps) that may come first.
::testing::AssertionResult next_error(Receiver &r, Error &error, int max_skip = 0,
                                      Clock::duration timeout = kWait);

// What a reader thread saw: every message until EOS/ERROR/failure/deadline.
struct ReadLog {
  std::vector<Received> messages;
  NextStatus last_status = NextStatus::kTimeout;
  Error error;
};

// Reads until an EOS or ERROR message, a failure, the deadline, or max_messages.
ReadLog read_until_end(Receiver &r, Clock::time_point deadline, size_t max_messages);

// Checks a received buffer sequence for a delta-unit stream: it starts on a
// keyframe, sequence numbers strictly increase, and every delta unit directly
// follows the buffer it depends on (a gap is only allowed before a keyframe).
::testing::AssertionResult consistent_gop_sequence(const std::vector<Received> &buffers);

// Polls a condition with no callback (server stats) until it holds or the
// timeout passes. Bounded in time and in iterations.
bool poll_until(const std::function<bool()> &pred, Clock::duration timeout = kWait);

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
// Raw peers: plain TCP sockets (raw TLS clients: common/raw_tls.h).

// "127.0.0.1:port" of a socket's own end, as the server reports its peer.
std::string local_address(int fd);

uint16_t bound_port(int fd);

sockaddr_in loopback(uint16_t port);

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

  // A raw TLS client (verifying the server as 127.0.0.1, 5 s socket
  // timeouts) that can stop reading or send data, which Receiver never does.
  // rcvbuf > 0 sets a small receive window first. nullptr (and a failure) if
  // it cannot connect.
  std::unique_ptr<test::RawTlsClient> connect_raw(uint16_t port, int rcvbuf = 0) {
    test::RawTlsOptions o;
    o.ca_file = pki_.ca();
    o.verify_name = "127.0.0.1";
    o.rcvbuf = rcvbuf;
    o.io_timeout = std::chrono::seconds(5);
    auto c = std::make_unique<test::RawTlsClient>();
    if (!c->connect(port, o)) {
      ADD_FAILURE() << "raw TLS client: " << c->error();
      return nullptr;
    }
    return c;
  }

  // A receiver that connected earlier still gets a buffer published now.
  void expect_still_receives(Server &server, Receiver &good, uint64_t index) {
    publish(server, index, 0);
    EXPECT_TRUE(next_buffer(good, index)) << "the good receiver stopped receiving";
  }

  test::Pki pki_;
  Events events_;  // declared before any server a test makes, so it outlives them
};

}  // namespace tlsframe
