// Core server tests (fixture: server_fixture.h). Slow and stalled clients: bounded queues, drops
// for that client only, publish never blocks, the client timeout, bounded kernel send queues.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

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
    // These cases are about buffers-max and bytes-max. With time-max (250 ms by
    // default) a slow reader that resumes later than that gets none of the
    // burst (expire() before each write), which is what time-max is for
    // (unit_queue_time, core_fairness) but happens here only under a slowed
    // run (sanitizers), so it is off.
    cfg.queue_max_time = std::chrono::nanoseconds{0};
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

TEST_F(ServerReceiverTest, ClientTimeoutDropsPeerThatStopsReading) {
  ServerConfig cfg = server_config();
  cfg.client_timeout = 500ms;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  uint64_t good_id = 0;
  auto good = connect_receiver(*server, &good_id);
  ASSERT_TRUE(good);

  auto stuck = connect_raw(server->port(), 4096);
  ASSERT_TRUE(stuck);
  const std::string address = stuck->local_address();
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
  std::vector<std::unique_ptr<test::RawTlsClient>> stalled;
  std::vector<uint16_t> stalled_ports;
  for (size_t i = 0; i < kStalled; ++i) {
    stalled.push_back(connect_raw(server->port()));
    ASSERT_TRUE(stalled.back());
    stalled_ports.push_back(stalled.back()->local_port());
  }
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() == kStalled + 1; }));

  // 150 KB keyframes (a 720p JPEG), read by the good receiver one by one:
  // 15 MB offered to each stalled client, far beyond any kernel buffer.
  constexpr size_t kSize = 150000;
  constexpr uint64_t kCount = 100;
  // A stalled client's last progress is after this (its first write), so it
  // cannot be dropped sooner than client_timeout after it, however long the
  // loop below takes (seconds under TSan).
  const auto t_start = Clock::now();
  for (uint64_t i = 0; i < kCount; ++i) {
    publish(*server, i, 0, kSize);
    ASSERT_TRUE(next_buffer(*good, i, kSize));
  }
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
  // Linux doubles SO_SNDBUF, and admits a write while the queue is below the limit, so
  // the queue can end up past it by at most one write (a 64 KiB part): seen 528,384 bytes
  // against 524,288 under TSan. Unbounded, it was 3,801,088 per socket.
  const uint64_t bound = 2 * static_cast<uint64_t>(cfg.send_buffer_size) + 64 * 1024;
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
  EXPECT_GE(Clock::now() - t_start, cfg.client_timeout) << "dropped before the timeout";
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

}  // namespace
}  // namespace tlsframe
