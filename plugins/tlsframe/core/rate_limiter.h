// A token bucket for the messages a client sends (docs/PROTOCOL.md, section
// 8.8). Pure policy: no clock of its own (the caller passes the time), no
// I/O, no allocation, so it is tested in microseconds without sleeping.
// Not thread-safe: each session owns one and uses it on its strand.
#pragma once

#include <chrono>
#include <cstdint>

namespace tlsframe {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // `rate` tokens per second, at most `burst` saved; starts full at `now`.
  // rate 0: only the first burst is ever allowed; burst 0: nothing is.
  RateLimiter(uint32_t rate, uint32_t burst, Clock::time_point now);

  // Takes one token at `now`: true if there was one, false (taking nothing)
  // if the bucket is empty. A `now` earlier than a previous one counts as
  // no time passing.
  bool allow(Clock::time_point now);
  // Whole tokens available at `now`, without taking any.
  uint32_t available(Clock::time_point now) const;

  uint32_t rate() const { return rate_; }    // tokens per second
  uint32_t burst() const { return burst_; }  // most tokens saved

 private:
  // Tokens are counted in units of 1/1e9 token per (token/s): one second at
  // `rate` adds rate * 1e9 units, one nanosecond adds `rate` units, so the
  // refill is exact integer arithmetic with no drift.
  static constexpr uint64_t kUnitsPerToken = 1'000'000'000;

  uint64_t credit_at(Clock::time_point now) const;  // credit after refilling up to now

  uint32_t rate_;
  uint32_t burst_;
  uint64_t capacity_;  // burst_ * kUnitsPerToken (at most ~4.3e18: fits)
  uint64_t credit_;    // units available at last_
  Clock::time_point last_;
};

}  // namespace tlsframe
