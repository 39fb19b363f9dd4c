#include "core/stream.h"

#include <cinttypes>
#include <cstring>

#include "core/log.h"
#include "core/session.h"

namespace tlsframe {
namespace {

constexpr auto kComp = log::Component::kServer;

uint64_t realtime_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Stream::Stream(asio::io_context &io, std::chrono::nanoseconds keyframe_request_interval,
               std::function<void()> keyframe_wanted)
    : keyframe_wanted_(std::move(keyframe_wanted)),
      keyframe_interval_(keyframe_request_interval),
      keyframe_strand_(asio::make_strand(io)),
      keyframe_timer_(keyframe_strand_) {}

void Stream::publish_caps(const std::string &caps) {
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kCaps;
  msg->bytes = wire::encode_caps(caps);
  TF_DEBUG(kComp, "caps: %s", caps.c_str());
  post_to_all(msg, [&](State &st) {
    st.caps = msg;
    st.eos = false;
  });
}

void Stream::publish_buffer(const wire::BufferMeta &meta_in, const uint8_t *data, size_t size,
                            std::shared_ptr<const void> owner) {
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kBuffer;
  msg->delta = (meta_in.flags & wire::kFlagDeltaUnit) != 0;
  wire::BufferMeta meta = meta_in;
  meta.sequence = sequence_++;
  meta.send_time_ns = realtime_ns();
  constexpr size_t kPrefix = wire::kHeaderSize + wire::kBufferMetaSize;
  if (owner && size) {
    msg->bytes.resize(kPrefix);
    msg->payload = data;
    msg->payload_size = size;
    msg->payload_owner = std::move(owner);
  } else {
    msg->bytes.resize(kPrefix + size);
    if (size) std::memcpy(msg->bytes.data() + kPrefix, data, size);
  }
  wire::write_buffer_prefix(msg->bytes.data(), meta, static_cast<uint32_t>(size));
  TF_LOGV(kComp, "publish buffer #%" PRIu64 " (%zu bytes%s)", meta.sequence, size,
          msg->delta ? ", delta" : "");
  post_to_all(msg, [&](State &st) {
    msg->caps = st.caps;  // before any session can see msg
    if (msg->delta) st.has_delta = true;
    st.eos = false;
  });
}

void Stream::publish_eos() {
  auto msg = std::make_shared<Message>();
  msg->type = wire::MessageType::kEos;
  msg->bytes = wire::encode_eos();
  post_to_all(msg, [](State &st) { st.eos = true; });
}

template <typename Update>
void Stream::post_to_all(const MessagePtr &msg, Update &&update) {
  snapshot_.clear();
  {
    auto st = state_.lock();
    update(*st);
    for (auto &kv : st->subscribers) snapshot_.push_back(kv.second);
  }
  for (auto &s : snapshot_) {
    if (s->enqueue(msg)) asio::post(s->executor(), [s] { s->drain(); });
  }
  snapshot_.clear();
}

Stream::Joined Stream::subscribe(const std::shared_ptr<Session> &s) {
  auto st = state_.lock();
  st->subscribers.emplace(s->info().id, s);
  Joined j;
  j.caps = st->caps;
  j.at_eos = st->eos;
  j.has_delta = st->has_delta;
  return j;
}

void Stream::unsubscribe(uint64_t session_id) {
  state_.lock()->subscribers.erase(session_id);
}

void Stream::unsubscribe_all() {
  std::map<uint64_t, std::shared_ptr<Session>> gone;
  gone.swap(state_.lock()->subscribers);  // released outside the lock
}

void Stream::request_keyframe(uint64_t session_id) {
  if (!keyframe_wanted_) return;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = keyframe_interval_;
  bool now_due = false;
  std::optional<std::chrono::steady_clock::time_point> arm_at;
  {
    auto st = state_.lock();
    if (st->stopped) return;
    if (!st->keyframe_timer_armed && (!st->last_keyframe_request || interval.count() <= 0 ||
                                      now - *st->last_keyframe_request >= interval)) {
      st->last_keyframe_request = now;
      now_due = true;
    } else {
      // Within the interval: merged into one request at its end, sent only
      // if a subscriber that asked is still subscribed then.
      st->keyframe_waiters.push_back(session_id);
      if (!st->keyframe_timer_armed) {
        st->keyframe_timer_armed = true;
        arm_at = *st->last_keyframe_request + interval;
      }
    }
  }
  if (now_due) {
    TF_DEBUG(kComp, "client %" PRIu64 ": asking upstream for a keyframe", session_id);
    keyframe_wanted_();
  } else if (arm_at) {
    // Handlers capture `this`: the server joins its I/O threads before the stream dies.
    asio::post(keyframe_strand_, [this, at = *arm_at] {
      keyframe_timer_.expires_at(at);
      keyframe_timer_.async_wait([this](std::error_code ec) {
        if (!ec) on_keyframe_timer();
      });
    });
  }
}

void Stream::on_keyframe_timer() {
  bool wanted = false;
  size_t asked = 0;
  {
    auto st = state_.lock();
    st->keyframe_timer_armed = false;
    asked = st->keyframe_waiters.size();
    for (uint64_t id : st->keyframe_waiters) {
      wanted = wanted || st->subscribers.count(id) > 0;
    }
    st->keyframe_waiters.clear();
    if (st->stopped) wanted = false;
    if (wanted) st->last_keyframe_request = std::chrono::steady_clock::now();
  }
  TF_DEBUG(kComp, "%zu deferred keyframe requests: %s", asked,
           wanted ? "asking upstream" : "none of those clients is still connected");
  if (wanted) keyframe_wanted_();
}

void Stream::stop() {
  state_.lock()->stopped = true;
  asio::post(keyframe_strand_, [this] { keyframe_timer_.cancel(); });
}

}  // namespace tlsframe
