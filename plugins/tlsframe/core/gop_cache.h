// A stream's GOP cache, for joiners at SyncMethod::kLatestKeyframe: the
// buffer messages from the latest keyframe on, both wire versions of each,
// shared with the client queues (no copies), bounded in wire bytes. Pure
// policy: no Asio, no lock (the stream's state lock guards it), no clock;
// unit-tested in tests/unit/test_gop_cache.cpp.
//
// Rules: a keyframe starts a new cache; a delta unit extends it; a delta unit
// that would take it over the bound drops it until the next keyframe (joiners
// then wait for that keyframe, as at kNextKeyframe); new caps and EOS empty it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/message.h"
#include "core/wire_format.h"

namespace tlsframe {

class GopCache {
 public:
  explicit GopCache(uint64_t max_bytes = 0) : max_bytes_(max_bytes) {}

  // What add() did with a buffer.
  enum class Added {
    kStarted,    // a keyframe: the cache now starts with it
    kAppended,   // a delta unit after the cached keyframe
    kOverBound,  // it did not fit: the cache is dropped until the next keyframe
    kIgnored,    // a delta unit with no cached keyframe (dropped earlier, or none yet)
  };
  // A buffer message, as v1 and v2 (same payload, same size).
  Added add(const MessagePtr &v1, const MessagePtr &v2);
  // New caps or EOS: empty until the next keyframe.
  void reset();

  bool empty() const { return v1_.empty(); }
  size_t buffers() const { return v1_.size(); }
  uint64_t bytes() const { return bytes_; }  // wire bytes of the cached buffers (one version)
  uint64_t max_bytes() const { return max_bytes_; }
  // The cached buffers in `version`, keyframe first (empty when none).
  const std::vector<MessagePtr> &messages(wire::Version version) const {
    return version == wire::Version::kV2 ? v2_ : v1_;
  }

 private:
  void clear();

  uint64_t max_bytes_;          // 0 = keeps nothing
  std::vector<MessagePtr> v1_;  // from the latest keyframe on, in order
  std::vector<MessagePtr> v2_;  // the same buffers as v2 messages
  uint64_t bytes_ = 0;
};

const char *gop_cache_added_name(GopCache::Added a);

}  // namespace tlsframe
