#include "core/server_fixture.h"

namespace tlsframe {

const char *kind_name(Error::Kind k) {
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
    case Error::Kind::kNotFound:
      return "kNotFound";
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

const uint8_t *data_of(const Received &m) {
  return m.storage->data() + m.data_offset;
}

void PrintTo(Error::Kind k, std::ostream *os) {
  *os << kind_name(k);
}

void PrintTo(RemoveReason r, std::ostream *os) {
  *os << remove_reason_name(r);
}

void PrintTo(NextStatus s, std::ostream *os) {
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

void publish(Server &server, uint64_t index, uint32_t flags, size_t size) {
  std::vector<uint8_t> data = pattern(index, size);
  server.publish_buffer(meta_for(index, flags), data.data(), data.size());
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

::testing::AssertionResult next_of_type(Receiver &r, MessageType type, Received &out,
                                        Clock::duration timeout) {
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

::testing::AssertionResult next_caps(Receiver &r, const std::string &caps) {
  Received m;
  if (auto ok = next_of_type(r, MessageType::kCaps, m); !ok) return ok;
  if (m.caps != caps)
    return ::testing::AssertionFailure() << "caps '" << m.caps << "' != '" << caps << "'";
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult next_buffer(Receiver &r, uint64_t index, size_t size) {
  Received m;
  if (auto ok = next_of_type(r, MessageType::kBuffer, m); !ok) return ok;
  if (m.meta.pts == wire::kNoTime || index_of(m.meta) != index) {
    return ::testing::AssertionFailure()
           << "expected buffer " << index << ", got buffer " << index_of(m.meta) << " (sequence "
           << m.meta.sequence << ")";
  }
  return data_is(m, index, size);
}

::testing::AssertionResult next_error(Receiver &r, Error &error, int max_skip,
                                      Clock::duration timeout) {
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

bool poll_until(const std::function<bool()> &pred, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (int i = 0; i < 100000; ++i) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);  // polling interval, not synchronisation
  }
  return pred();
}

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

}  // namespace tlsframe
