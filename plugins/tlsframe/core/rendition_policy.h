// The automatic rendition choice for one viewer (docs/PROTOCOL.md 8.12) as
// pure policy: no Asio, no OpenSSL, no clock of its own. The session samples
// its connection every kSampleInterval (its queue delay, the kernel's
// TCP_INFO) and hands each sample with the ladder's rates to sample(); the
// policy answers "stay" or "switch to rendition i, because ...". Unit-tested
// in microseconds (tests/unit/test_rendition_policy.cpp).
//
// Steps down quickly: a queue delay above down_delay for down_hold means the
// link does not carry the current rate; the target is the best rendition
// that fits in the measured delivery rate with headroom (or the lowest).
// Steps up cautiously, one step at a time, after up_hold without congestion:
//   - evidence for: path-limited delivery rates in rate_window above the
//     higher rendition's rate with headroom, at least up_evidence of them:
//     step up;
//   - evidence against: a path-limited rate in rate_window below that
//     (and too few above it): stay;
//   - no path-limited rate below that in rate_window (none at all, or too
//     few above it to count): a tentative step up (a probe). A
//     failed one is cheap: decisions resume up_settle after it, the switch
//     back drops the unsent data (Session::finish_switch), and a step up
//     undone within failed_up_window doubles that rung's hold, capped at
//     max_up_hold so a link that was raised is found within about 15 s.
//
// Why (measured on a veth shaped by tbf rate 1mbit burst 3000 latency 80ms,
// then `tc qdisc change` to 10mbit burst 6000; 720p 2.5 Mbit/s and 360p
// 500 kbit/s x264 renditions, GOP 2 s; tests/net/slowlink_netns.py with
// GST_DEBUG=tlsframe-server:6): on the low rendition the connection is
// application-limited. Its app-limited tcpi_delivery_rate read 0.2-1.9
// Gbit/s at 1 Mbit/s and a constant 1.93 Gbit/s at 10 Mbit/s (short trains
// leave the bucket at line rate, and Linux keeps the highest app-limited
// sample): no statistic of them separates the two links, so they are never
// used. At 1 Mbit/s each keyframe train of the low rendition (13.7 KB)
// outgrew the congestion window and gave a path-limited sample of 0.95-1.46
// Mbit/s every 1-2 s (evidence against); at 10 Mbit/s there was none in
// 20 s (so, after rate_window, a probe).
//
// Read read_tcp_sample() once per sample on the session's socket.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace tlsframe {

// What the kernel says about one TCP connection (Linux TCP_INFO).
struct TcpSample {
  bool ok = false;                 // false: not a TCP socket, or no TCP_INFO
  uint64_t delivery_rate_bps = 0;  // tcpi_delivery_rate, in bits/s (0 = no sample yet)
  bool app_limited = true;         // the rate sample was limited by the sender, not the path
  uint32_t rtt_us = 0;             // smoothed RTT
  uint32_t notsent_bytes = 0;      // written by the application, not yet sent
  uint32_t unacked_bytes = 0;      // sent, not yet acknowledged (segments x MSS)
};
// TCP_INFO of fd (any thread; one getsockopt).
TcpSample read_tcp_sample(int fd);

// How often a session samples its connection.
inline constexpr std::chrono::milliseconds kRenditionSampleInterval{100};
// Unsent bytes the kernel holds at most for a session of a stream with
// renditions (TCP_NOTSENT_LOWAT): what is not sent yet waits in the session's
// queue, where it can still be dropped (time-max, a switch) and is counted in
// the queue delay, instead of seconds of it in a 256 KiB send buffer.
inline constexpr uint32_t kRenditionNotsentLowat = 16 * 1024;

struct RenditionPolicyConfig {
  std::chrono::microseconds down_delay{350'000};  // queue delay that counts as congestion
  std::chrono::microseconds down_hold{200'000};   // ... for this long: step down
  std::chrono::microseconds up_delay{120'000};    // below this the connection is keeping up
  std::chrono::microseconds up_hold{4'000'000};   // no congestion this long before a step up
  std::chrono::microseconds settle{1'500'000};    // after a step down: no decision (data drains)
  std::chrono::microseconds up_settle{500'000};   // after a step up: no decision (a failed try
                                                  // shows within down_hold after this)
  std::chrono::microseconds rate_window{8'000'000};   // path-limited rates remembered this long
  std::chrono::microseconds failed_up_window{10'000'000};  // down this soon after up: failed
  std::chrono::microseconds max_up_hold{10'000'000};  // cap of the doubled hold: a raised
                                                      // link is tried within about this
  double down_headroom = 0.8;  // a step down targets rate <= 0.8 x measured delivery rate
  double up_headroom = 1.3;    // a step up needs a delivery rate >= 1.3 x the higher rate
  // ... in at least this many path-limited samples of rate_window: one sample
  // alone can be an outlier (4.27 Mbit/s was seen once over a 1 Mbit/s tbf
  // link, among 0.95-1.46), and a step up on it fails within a second.
  size_t up_evidence = 2;
};

class RenditionPolicy {
 public:
  explicit RenditionPolicy(RenditionPolicyConfig config = {});

  struct Sample {
    std::chrono::microseconds at{0};           // monotonic time of the sample
    std::chrono::microseconds queue_delay{0};  // how late data queued now will arrive
    uint64_t delivery_rate_bps = 0;            // the kernel's latest delivery rate (0 = none)
    bool app_limited = true;                   // ... limited by the sender, not the path
  };
  struct Decision {
    bool change = false;  // switch to `target`
    size_t target = 0;    // index into the ladder (0 = highest rate)
    bool up = false;
    std::string reason;  // "auto: down, queue delay 640 ms, delivery 0.9 Mbit/s"
  };
  // ladder: each rendition's rate in bits/s, highest first (0 = not known
  // yet: no automatic switch until every rate is known); current: the index
  // the client gets now (or is switching to).
  Decision sample(const Sample &s, const std::vector<uint64_t> &ladder, size_t current);
  // The session switched at `at`: from now on, settle first. from == to:
  // it started on `to` (no settling).
  void switched(std::chrono::microseconds at, size_t from, size_t to);

  // The connection's capacity as measured: the highest path-limited
  // delivery rate in rate_window (bits/s; 0 = unknown).
  uint64_t estimated_rate() const;

 private:
  RenditionPolicyConfig config_;
  std::deque<std::pair<std::chrono::microseconds, uint64_t>> rates_;  // (at, bits/s), oldest first
  std::chrono::microseconds congested_since_{-1};  // -1: not congested now
  std::chrono::microseconds clear_since_{0};       // start of the current uncongested spell
  std::chrono::microseconds last_switch_{-1};      // -1: none yet
  bool last_was_up_ = false;
  size_t up_from_ = 0;  // the index a last step up left
  std::vector<std::chrono::microseconds> up_hold_;  // per ladder index: the hold before leaving it upward
  std::chrono::microseconds hold_for(size_t index) const;
};

}  // namespace tlsframe
