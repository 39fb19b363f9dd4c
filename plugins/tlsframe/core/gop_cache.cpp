#include "core/gop_cache.h"

namespace tlsframe {

GopCache::Added GopCache::add(const MessagePtr &v1, const MessagePtr &v2) {
  const uint64_t size = v1->wire_size();
  if (!v1->delta) {
    clear();
    if (size > max_bytes_) return Added::kOverBound;
    v1_.push_back(v1);
    v2_.push_back(v2);
    bytes_ = size;
    return Added::kStarted;
  }
  if (v1_.empty()) return Added::kIgnored;
  if (bytes_ + size > max_bytes_) {
    clear();
    return Added::kOverBound;
  }
  v1_.push_back(v1);
  v2_.push_back(v2);
  bytes_ += size;
  return Added::kAppended;
}

void GopCache::reset() {
  clear();
}

// clear() keeps the vectors' capacity: the next GOP is about as long.
void GopCache::clear() {
  v1_.clear();
  v2_.clear();
  bytes_ = 0;
}

const char *gop_cache_added_name(GopCache::Added a) {
  switch (a) {
    case GopCache::Added::kStarted:
      return "started";
    case GopCache::Added::kAppended:
      return "appended";
    case GopCache::Added::kOverBound:
      return "over-bound";
    case GopCache::Added::kIgnored:
      return "ignored";
  }
  return "unknown";
}

}  // namespace tlsframe
