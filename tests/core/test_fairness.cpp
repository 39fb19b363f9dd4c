// Per-client fairness of the fan-out server over real loopback TLS: 32
// clients, 8 of which read at a tenth of the stream's rate. The 24 healthy
// clients get every frame; the slow ones get a lower frame rate with bounded
// latency, and on a delta-unit stream they lose whole GOPs only (every delta
// unit they get directly follows the frame it depends on). The server's
// per-client stats report it: frames sent and dropped, bytes, queue depth,
// last error.
//
// The slow readers are paced by the clock on purpose: reading slowly is the
// behaviour under test. Every wait is bounded by a deadline.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "core/server.h"
#include "core/wire_format.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kClients = 32;
constexpr int kSlow = 8;             // clients 0..7 are slow
constexpr int kFps = 30;             // stream rate
constexpr int kSlowFps = kFps / 10;  // slow readers take one buffer per 10 frame intervals
constexpr int kFrames = 6 * kFps;    // 6 s of stream
constexpr int kGop = 10;             // a keyframe every 10 frames
constexpr size_t kFrameSize = 32 * 1024;
// Server queue per client: 4 frames, bounded in bytes (the buffer-count limit
// stays at its default, so a briefly starved I/O thread does not drop frames
// of healthy clients).
constexpr uint64_t kQueueBytes = 4 * (kFrameSize + 128);
constexpr int kSendBuffer = 32 * 1024;  // SO_SNDBUF: the kernel holds little beyond the queue
constexpr int kSlowRcvbuf = 8 * 1024;  // small socket buffer: back-pressure reaches the server soon

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// What one client received.
struct Received {
  std::vector<uint64_t> sequence;  // of each buffer, in arrival order
  std::vector<bool> delta;
  std::vector<double> latency_ms;  // arrival - server publish time
  bool failed = false;
  std::string why;
};

// Reads a client's stream until the last frame, EOS/ERROR, or the deadline.
// slow: one buffer per 1/kSlowFps s, reading the socket only when it needs bytes.
void read_stream(RawTlsClient &c, bool slow, Clock::time_point deadline, Received &out) {
  std::vector<uint8_t> acc;
  uint8_t chunk[4096];
  auto next_slot = Clock::now();
  while (Clock::now() < deadline) {
    wire::MessageView m;
    auto r = wire::decode(acc.data(), acc.size(), wire::kDefaultMaxPayload, m);
    if (r.status == wire::DecodeStatus::kError) {
      out.failed = true;
      out.why = "decode: " + r.error;
      return;
    }
    if (r.status == wire::DecodeStatus::kMessage) {
      if (m.type == wire::MessageType::kBuffer) {
        out.sequence.push_back(m.meta.sequence);
        out.delta.push_back((m.meta.flags & wire::kFlagDeltaUnit) != 0);
        out.latency_ms.push_back(
            static_cast<double>(static_cast<int64_t>(realtime_ns() - m.meta.send_time_ns)) / 1e6);
        if (m.meta.sequence + 1 == kFrames) return;
      } else if (m.type != wire::MessageType::kCaps) {
        return;  // EOS or ERROR: the server ended the stream
      }
      acc.erase(acc.begin(), acc.begin() + static_cast<long>(r.size));
      if (slow && m.type == wire::MessageType::kBuffer) {
        next_slot += std::chrono::milliseconds(1000 / kSlowFps);
        std::this_thread::sleep_until(std::min(next_slot, deadline));  // the paced reader
      }
      continue;
    }
    int n = SSL_read(c.ssl(), chunk, sizeof chunk);
    if (n <= 0) {
      out.failed = true;
      out.why = "read failed (SSL error " + std::to_string(SSL_get_error(c.ssl(), n)) + ")";
      return;
    }
    acc.insert(acc.end(), chunk, chunk + n);
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

TEST(Fairness, ThirtyTwoClientsEightSlowHealthyGetEveryFrameSlowLoseWholeGopsWithBoundedLatency) {
  Pki pki;
  ServerConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.tls.cert_file = pki.server_cert();
  cfg.tls.key_file = pki.server_key();
  cfg.queue_max_bytes = kQueueBytes;
  cfg.send_buffer_size = kSendBuffer;
  // The byte limit's policy, not time-max's (core_latency_bound).
  cfg.queue_max_time = std::chrono::nanoseconds(0);
  auto started = Server::start(cfg, ServerCallbacks{});
  ASSERT_TRUE(started) << started.error().message;
  std::unique_ptr<Server> server = std::move(started.value());

  std::vector<std::unique_ptr<RawTlsClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<RawTlsClient>();
    test::RawTlsOptions o;
    o.ca_file = pki.ca();
    o.rcvbuf = i < kSlow ? kSlowRcvbuf : 0;
    o.io_timeout = 5s;  // bounds every blocking read
    ASSERT_TRUE(c->connect(server->port(), o)) << "client " << i << ": " << c->error();
    clients.push_back(std::move(c));
  }
  // Every client admitted before the first frame (polled: no callback needed, bounded).
  auto join_deadline = Clock::now() + 10s;
  while (server->num_clients() < kClients && Clock::now() < join_deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(server->num_clients(), static_cast<size_t>(kClients));

  const auto stream_time = std::chrono::milliseconds(1000 * kFrames / kFps);
  // Healthy readers stop at the last frame; slow ones just after the stream ends.
  const auto read_deadline = Clock::now() + stream_time + 5s;
  const auto slow_deadline = Clock::now() + stream_time + 500ms;
  std::vector<Received> got(kClients);
  std::vector<std::thread> readers;
  for (int i = 0; i < kClients; ++i) {
    readers.emplace_back([&, i] {
      read_stream(*clients[i], i < kSlow, i < kSlow ? slow_deadline : read_deadline, got[i]);
    });
  }

  server->publish_caps("video/x-h264,stream-format=byte-stream,alignment=au");
  std::vector<uint8_t> payload(kFrameSize, 0x5a);
  auto next = Clock::now();
  for (int f = 0; f < kFrames; ++f) {
    wire::BufferMeta meta;
    meta.pts = static_cast<uint64_t>(f) * 1000000000ull / kFps;
    meta.flags = (f % kGop == 0 || f == kFrames - 1) ? 0u : wire::kFlagDeltaUnit;
    server->publish_buffer(meta, payload.data(), payload.size());
    next += std::chrono::microseconds(1000000 / kFps);
    std::this_thread::sleep_until(next);  // the stream's own rate
  }
  std::vector<ClientStats> stats = server->client_stats();  // before anyone leaves
  for (auto &t : readers) t.join();
  ASSERT_EQ(stats.size(), static_cast<size_t>(kClients));
  // Server ids are 1..32 in connection order, so client i has id i + 1.
  std::sort(stats.begin(), stats.end(),
            [](const ClientStats &a, const ClientStats &b) { return a.info.id < b.info.id; });

  std::vector<double> healthy_lat, slow_lat;
  for (int i = 0; i < kClients; ++i) {
    const Received &r = got[i];
    const ClientStats &s = stats[i];
    const bool slow = i < kSlow;
    SCOPED_TRACE("client " + std::to_string(i) + (slow ? " (slow)" : " (healthy)"));
    EXPECT_FALSE(r.failed) << r.why;
    ASSERT_FALSE(r.sequence.empty());
    // Starts on a keyframe; a delta unit only ever follows the frame before it.
    EXPECT_FALSE(r.delta[0]);
    for (size_t k = 1; k < r.sequence.size(); ++k) {
      EXPECT_GT(r.sequence[k], r.sequence[k - 1]);
      if (r.delta[k]) {
        EXPECT_EQ(r.sequence[k], r.sequence[k - 1] + 1)
            << "delta unit #" << r.sequence[k] << " arrived without the frame before it";
      }
    }
    EXPECT_LE(s.queue_bytes, kQueueBytes);
    double max_lat = *std::max_element(r.latency_ms.begin(), r.latency_ms.end());
    std::printf(
        "client %2d %-7s: received %3zu/%d frames (%.1f fps), server: frames-sent %3llu "
        "frames-dropped %3llu bytes-sent %7llu queue-buffers %llu last-error \"%s\"; latency "
        "p50 %.0f ms, max %.0f ms\n",
        i, slow ? "slow" : "healthy", r.sequence.size(), kFrames,
        static_cast<double>(r.sequence.size()) * 1000.0 / static_cast<double>(stream_time.count()),
        (unsigned long long)s.frames_sent, (unsigned long long)s.frames_dropped,
        (unsigned long long)s.bytes_sent, (unsigned long long)s.queue_buffers, s.last_error.c_str(),
        percentile(r.latency_ms, 0.5), max_lat);
    if (slow) {
      slow_lat.insert(slow_lat.end(), r.latency_ms.begin(), r.latency_ms.end());
      EXPECT_GT(s.frames_dropped, 0u);
      EXPECT_LT(r.sequence.size(), static_cast<size_t>(kFrames) / 2) << "not actually slow";
      EXPECT_NE(s.last_error.find("queue full"), std::string::npos) << s.last_error;
      // Bounded: the server queue (4 frames) plus the socket buffers (about 2 frames)
      // at the slow rate is 2 s; an unbounded queue would reach 5.4 s by the end.
      EXPECT_LT(max_lat, 3000.0);
    } else {
      healthy_lat.insert(healthy_lat.end(), r.latency_ms.begin(), r.latency_ms.end());
      EXPECT_EQ(r.sequence.size(), static_cast<size_t>(kFrames)) << "a healthy client lost frames";
      EXPECT_EQ(s.frames_dropped, 0u);
      EXPECT_EQ(s.last_error, "");
      EXPECT_LT(max_lat, 1000.0);
    }
  }
  std::printf("healthy (%d): latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", kClients - kSlow,
              percentile(healthy_lat, 0.5), percentile(healthy_lat, 0.99),
              percentile(healthy_lat, 1.0));
  std::printf("slow (%d): latency p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", kSlow,
              percentile(slow_lat, 0.5), percentile(slow_lat, 0.99), percentile(slow_lat, 1.0));
  server->stop();
}

}  // namespace
}  // namespace tlsframe::test
