// Token bucket with integer arithmetic: the credit is refilled lazily when
// asked, from the time elapsed since the last refill.
#include "core/rate_limiter.h"

namespace tlsframe {
namespace {

int64_t nanos(RateLimiter::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

RateLimiter::RateLimiter(uint32_t rate, uint32_t burst, Clock::time_point now)
    : rate_(rate),
      burst_(burst),
      capacity_(uint64_t{burst} * kUnitsPerToken),
      credit_(capacity_),
      last_(now) {}

uint64_t RateLimiter::credit_at(Clock::time_point now) const {
  if (now <= last_ || rate_ == 0 || credit_ >= capacity_) return credit_;
  // Unsigned subtraction: defined for any two times, exact since now > last_.
  const uint64_t elapsed = static_cast<uint64_t>(nanos(now)) - static_cast<uint64_t>(nanos(last_));
  const uint64_t missing = capacity_ - credit_;
  // Full once elapsed * rate >= missing; compared by division so the product
  // is only formed when it is below missing + rate (no overflow).
  if (elapsed >= missing / rate_ + 1) return capacity_;
  const uint64_t added = elapsed * rate_;
  return added >= missing ? capacity_ : credit_ + added;
}

bool RateLimiter::allow(Clock::time_point now) {
  credit_ = credit_at(now);
  if (now > last_) last_ = now;
  if (credit_ < kUnitsPerToken) return false;
  credit_ -= kUnitsPerToken;
  return true;
}

uint32_t RateLimiter::available(Clock::time_point now) const {
  return static_cast<uint32_t>(credit_at(now) / kUnitsPerToken);
}

}  // namespace tlsframe
