// Dead-peer detection for a connected TCP socket: a peer that vanished
// without a FIN or RST (power loss, cable pulled, NAT state dropped) answers
// nothing, so on a silent stream the server would never notice. TCP
// keepalive probes a socket idle that long; TCP_USER_TIMEOUT aborts the
// connection once sent data or probes stay unacknowledged for the timeout.
// The kernel then fails the pending read or write with ETIMEDOUT.
#pragma once

#include <chrono>
#include <system_error>

namespace tlsframe {

struct KeepaliveSettings {
  bool enabled = false;              // false: leave the socket as the kernel made it
  std::chrono::seconds idle{0};      // TCP_KEEPIDLE: silence before the first probe
  std::chrono::seconds interval{0};  // TCP_KEEPINTVL: between probes
  int count = 0;                     // TCP_KEEPCNT: unanswered probes that abort
  std::chrono::milliseconds user_timeout{0};  // TCP_USER_TIMEOUT: unacknowledged this long aborts
};

// Settings that remove a silent dead peer about `timeout` after its last
// packet: probes from timeout/2 on, once a second or so, and a user timeout
// of `timeout` (the kernel aborts on whichever comes first). 0 = disabled.
// Whole seconds, at least 1 (the kernel's unit), at most the kernel's limits.
KeepaliveSettings keepalive_for_timeout(std::chrono::nanoseconds timeout);

// Applies k to a connected TCP socket; the first setsockopt error, if any.
std::error_code apply_keepalive(int fd, const KeepaliveSettings &k);

// Sets TCP_USER_TIMEOUT alone (0 = the kernel's default: no user timeout).
// Linux applies it to zero-window probes too: a client that reads, but slower
// than the stream, keeps a zero window for long stretches and would be
// aborted although it takes bytes. So a session keeps it only while it is not
// backlogged (nothing queued behind the message just written); a backlogged
// client is the write-progress timeout's case.
std::error_code set_user_timeout(int fd, std::chrono::milliseconds timeout);

}  // namespace tlsframe
