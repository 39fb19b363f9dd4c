#include "core/keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace tlsframe {
namespace {

// The kernel's limits (net/ipv4/tcp.c: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT).
constexpr int64_t kMaxIdleSeconds = 32767;
constexpr int64_t kMaxIntervalSeconds = 32767;
constexpr int64_t kMaxCount = 127;
constexpr int64_t kProbes = 3;  // probes in the second half of the timeout

}  // namespace

KeepaliveSettings keepalive_for_timeout(std::chrono::nanoseconds timeout) {
  KeepaliveSettings k;
  if (timeout.count() <= 0) return k;
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  const int64_t total_ms =
      std::max<int64_t>(1, duration_cast<std::chrono::milliseconds>(timeout).count());
  const int64_t total_s = std::max<int64_t>(1, duration_cast<seconds>(timeout).count());
  const int64_t idle = std::clamp<int64_t>(total_s / 2, 1, kMaxIdleSeconds);
  const int64_t interval =
      std::clamp<int64_t>((total_s - idle) / kProbes, 1, kMaxIntervalSeconds);
  // Without TCP_USER_TIMEOUT the probes alone end it at idle + count x interval.
  const int64_t count =
      std::clamp<int64_t>((std::max<int64_t>(total_s - idle, 1) + interval - 1) / interval, 1,
                          kMaxCount);
  k.enabled = true;
  k.idle = seconds(idle);
  k.interval = seconds(interval);
  k.count = static_cast<int>(count);
  // setsockopt takes an unsigned int of milliseconds.
  k.user_timeout = std::chrono::milliseconds(std::min<int64_t>(total_ms, UINT32_MAX));
  return k;
}

std::error_code apply_keepalive(int fd, const KeepaliveSettings &k) {
  if (!k.enabled) return {};
  auto set = [fd](int level, int name, int value) -> std::error_code {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
      return std::error_code(errno, std::generic_category());
    }
    return {};
  };
  std::error_code ec = set(SOL_SOCKET, SO_KEEPALIVE, 1);
  if (!ec) ec = set(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(k.idle.count()));
  if (!ec) ec = set(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(k.interval.count()));
  if (!ec) ec = set(IPPROTO_TCP, TCP_KEEPCNT, k.count);
  if (!ec) ec = set_user_timeout(fd, k.user_timeout);
  return ec;
}

std::error_code set_user_timeout(int fd, std::chrono::milliseconds timeout) {
  const unsigned int ms = static_cast<unsigned int>(
      std::clamp<int64_t>(timeout.count(), 0, static_cast<int64_t>(UINT32_MAX)));
  if (::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
    return std::error_code(errno, std::generic_category());
  }
  return {};
}

}  // namespace tlsframe
