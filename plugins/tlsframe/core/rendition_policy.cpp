// The automatic rendition choice. Times are microseconds from any fixed
// origin the caller chooses; nothing here reads a clock.
#include "core/rendition_policy.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>

namespace tlsframe {
namespace {

using us = std::chrono::microseconds;

std::string mbit(uint64_t bps) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f Mbit/s", static_cast<double>(bps) / 1e6);
  return buf;
}

std::string ms(us t) {
  return std::to_string(t.count() / 1000) + " ms";
}

}  // namespace

TcpSample read_tcp_sample(int fd) {
  TcpSample out;
  struct tcp_info info {};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return out;
  out.ok = true;
  // Fields past the kernel's struct stay zero (older kernels: no rate).
  out.delivery_rate_bps = info.tcpi_delivery_rate * 8;
  out.app_limited = info.tcpi_delivery_rate_app_limited != 0;
  out.rtt_us = info.tcpi_rtt;
  out.notsent_bytes = info.tcpi_notsent_bytes;
  out.unacked_bytes = info.tcpi_unacked * info.tcpi_snd_mss;
  return out;
}

RenditionPolicy::RenditionPolicy(RenditionPolicyConfig config) : config_(config) {}

us RenditionPolicy::hold_for(size_t index) const {
  return index < up_hold_.size() ? up_hold_[index] : config_.up_hold;
}

uint64_t RenditionPolicy::estimated_rate() const {
  uint64_t best = 0;
  for (const auto &r : rates_) best = std::max(best, r.second);
  return best;
}

void RenditionPolicy::switched(us at, size_t from, size_t to) {
  congested_since_ = us(-1);
  clear_since_ = at;
  // The session started: nothing old to drain, so no settling; a viewer
  // that joined over a slow link steps down within down_hold.
  if (from == to) return;
  const bool up = to < from;
  if (!up && last_was_up_ && last_switch_.count() >= 0 && to >= up_from_ &&
      at - last_switch_ < config_.failed_up_window) {
    // The last step up did not hold: wait longer before trying it again.
    if (up_hold_.size() <= up_from_) up_hold_.resize(up_from_ + 1, config_.up_hold);
    up_hold_[up_from_] = std::min(config_.max_up_hold, up_hold_[up_from_] * 2);
  }
  if (up) up_from_ = from;
  last_was_up_ = up;
  last_switch_ = at;
}

RenditionPolicy::Decision RenditionPolicy::sample(const Sample &s, const std::vector<uint64_t> &ladder,
                                                  size_t current) {
  Decision d;
  // Only samples the path limited: an application-limited one says how fast
  // a short burst went, not what the path carries (on a tbf-shaped veth,
  // burst samples read 1-4 Gbit/s over a 1 Mbit/s link).
  if (s.delivery_rate_bps > 0 && !s.app_limited) rates_.emplace_back(s.at, s.delivery_rate_bps);
  while (!rates_.empty() && s.at - rates_.front().first > config_.rate_window) rates_.pop_front();

  const bool congested = s.queue_delay >= config_.down_delay;
  if (congested) {
    if (congested_since_.count() < 0) congested_since_ = s.at;
  } else {
    congested_since_ = us(-1);
  }
  if (s.queue_delay >= config_.up_delay) clear_since_ = s.at;

  if (ladder.size() < 2 || current >= ladder.size()) return d;
  if (std::any_of(ladder.begin(), ladder.end(), [](uint64_t r) { return r == 0; })) return d;
  const us settle = last_was_up_ ? config_.up_settle : config_.settle;
  if (last_switch_.count() >= 0 && s.at - last_switch_ < settle) return d;

  // Down: quickly, as far as the measured rate says.
  if (congested && s.at - congested_since_ >= config_.down_hold && current + 1 < ladder.size()) {
    // While congested the connection is not sender-limited: its recent
    // delivery rates measure the path. The last second's best of them.
    uint64_t path = 0;
    for (const auto &r : rates_) {
      if (s.at - r.first <= us(1'000'000)) path = std::max(path, r.second);
    }
    size_t target = ladder.size() - 1;
    if (path > 0) {
      for (size_t i = current + 1; i < ladder.size(); ++i) {
        if (static_cast<double>(ladder[i]) <= config_.down_headroom * static_cast<double>(path)) {
          target = i;
          break;
        }
      }
    }
    d.change = true;
    d.target = target;
    d.up = false;
    d.reason = "auto: down, queue delay " + ms(s.queue_delay) +
               (path > 0 ? ", delivery " + mbit(path) : std::string());
    return d;
  }

  // Up: one step, after a clear spell. Evidence first: path-limited rates
  // in the window with headroom for the higher rendition (up_evidence of
  // them). Path-limited rates short of that are evidence against: stay. No
  // such rate in the window (the connection was application-limited
  // throughout, which says nothing of the path: see the header; or the only
  // rates clear the bar, too few to count) is a tentative step up; if it
  // fails, switched() doubles this rung's hold (capped). A lone rate above
  // the bar must not hold the try back: it would stay rate_window after the
  // slow link's last rate left, and a raised link would wait twice as long.
  if (current > 0 && !congested && s.at - clear_since_ >= hold_for(current)) {
    const uint64_t need =
        static_cast<uint64_t>(config_.up_headroom * static_cast<double>(ladder[current - 1]));
    const uint64_t seen = estimated_rate();
    const auto clearing = std::count_if(rates_.begin(), rates_.end(),
                                        [need](const auto &r) { return r.second >= need; });
    if (static_cast<size_t>(clearing) >= std::max<size_t>(1, config_.up_evidence)) {
      d.change = true;
      d.target = current - 1;
      d.up = true;
      d.reason = "auto: up, delivery " + mbit(seen) + " for " + mbit(ladder[current - 1]);
    } else if (clearing == static_cast<std::ptrdiff_t>(rates_.size())) {
      d.change = true;
      d.target = current - 1;
      d.up = true;
      d.reason = "auto: up (trying), " +
                 (rates_.empty() ? "no path-limited rate"
                                 : "no path-limited rate below " + mbit(need)) +
                 " for " + ms(config_.rate_window) + ", clear for " + ms(s.at - clear_since_);
    }
  }
  return d;
}

}  // namespace tlsframe
