// Messages for the unit tests of the client queue's policy (test_client_queue,
// test_gop_cache, test_queue_time): made by hand as the server's encoder would
// hand them over, and drained as the writer would take them.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/client_queue.h"

namespace tlsframe::test {

inline MessagePtr make_caps(const std::string &caps) {
  auto m = std::make_shared<Message>();
  m->type = wire::MessageType::kCaps;
  m->bytes = wire::encode_caps(caps);
  return m;
}

// A buffer of `size` wire bytes (zeros) published under `caps`; not yet const, so a
// test can set more (a tag byte, the publish time) before offering it.
inline std::shared_ptr<Message> make_buffer(bool delta, const MessagePtr &caps, size_t size = 100) {
  auto m = std::make_shared<Message>();
  m->type = wire::MessageType::kBuffer;
  m->delta = delta;
  m->bytes.assign(size, 0);
  m->caps = caps;
  return m;
}

// Everything the writer takes out, in order (bounded; a null begin_write() on a
// non-empty queue is a failure).
inline std::vector<MessagePtr> write_all(ClientQueue &q) {
  std::vector<MessagePtr> out;
  for (int i = 0; i < 10000 && !q.empty(); ++i) {
    const MessagePtr *m = q.begin_write();
    EXPECT_NE(m, nullptr);
    if (!m) break;
    out.push_back(q.end_write());
  }
  return out;
}

}  // namespace tlsframe::test
