#include "core/client_queue.h"

#include <algorithm>

namespace tlsframe {

ClientQueue::ClientQueue(QueueLimits limits) : limits_(limits) {
  limits_.max_buffers = std::max<uint32_t>(1, limits_.max_buffers);
  limits_.max_bytes = std::max<uint64_t>(1, limits_.max_bytes);
}

ClientQueue::Decision ClientQueue::offer(const MessagePtr &msg, TimePoint now) {
  Decision d;
  if (msg->type == wire::MessageType::kBuffer) {
    const bool timed = limits_.max_time.count() > 0 && now != TimePoint{} &&
                       msg->published != TimePoint{};
    if (timed) {
      const TimePoint oldest = now - limits_.max_time;
      bool broken = false;
      const size_t stale = drop_stale(oldest, &broken);
      d.dropped += stale;
      d.purged += stale;
      if (stale) d.late = true;
      const bool too_late = msg->published < oldest;
      if (too_late || (broken && msg->delta && !need_keyframe_)) {
        // Not worth sending (already too old), or its reference is gone:
        // the client resumes on a keyframe, asked for by the session.
        d.late = true;
        d.dropped++;
        if (!need_keyframe_ || !msg->delta) {
          need_keyframe_ = true;
          d.outcome = Outcome::kDroppedOverflow;
        } else {
          d.outcome = Outcome::kDroppedForKeyframe;
        }
        return d;
      }
      if (stale) d.outcome = Outcome::kQueuedAfterPurge;
    }
    if (msg->delta && need_keyframe_) {
      if (!keyframe_asked_) {
        // Joined before the stream showed a delta unit (nothing asked at join),
        // e.g. between a new stream's first keyframe and its first delta: ask
        // now instead of waiting a whole GOP.
        keyframe_asked_ = true;
        d.ask_keyframe = true;
      }
      d.outcome = Outcome::kDroppedForKeyframe;
      d.dropped++;
      return d;
    }
    // A joiner's burst is on top of the limits (see the header).
    const bool over = queue_.size() - burst_count_ >= limits_.max_buffers ||
                      (bytes_ - burst_bytes_) + msg->wire_size() > limits_.max_bytes;
    if (over) {
      if (msg->delta) {
        // Skip to the next keyframe: a delta unit without its reference is useless.
        need_keyframe_ = true;
        d.outcome = Outcome::kDroppedOverflow;
        d.dropped++;
        return d;
      }
      d.purged += queue_.size() - (writing_ ? 1 : 0);
      d.dropped += purge_unsent();
      d.outcome = Outcome::kQueuedAfterPurge;
    }
    need_keyframe_ = false;
    keyframe_asked_ = true;
    if (msg->caps && msg->caps.get() != last_caps_) push(msg->caps);
  } else if (msg->type == wire::MessageType::kCaps) {
    // Sent now only to an idle client; otherwise the next buffer brings its own
    // caps, so a stalled client never accumulates caps changes.
    // Messages for this client alone (WELCOME, STREAM_LIST) do not count.
    const bool stream_queued =
        std::any_of(queue_.begin(), queue_.end(), [](const Entry &e) {
          return e.msg->type != wire::MessageType::kWelcome &&
                 e.msg->type != wire::MessageType::kStreamList;
        });
    if (msg.get() == last_caps_ || stream_queued) {
      d.outcome = Outcome::kIgnored;
      return d;
    }
  }
  push(msg);
  return d;
}

size_t ClientQueue::offer_burst(const std::vector<MessagePtr> &gop) {
  if (gop.empty() || gop.front()->type != wire::MessageType::kBuffer || gop.front()->delta) {
    return 0;
  }
  size_t buffers = 0;
  for (const MessagePtr &msg : gop) {
    if (msg->type != wire::MessageType::kBuffer) continue;
    if (msg->caps && msg->caps.get() != last_caps_) push(msg->caps, true);
    push(msg, true);
    buffers++;
  }
  need_keyframe_ = false;
  keyframe_asked_ = true;
  return buffers;
}

size_t ClientQueue::push_final(const MessagePtr &msg) {
  const size_t dropped = purge_unsent();
  push(msg);
  return dropped;
}

void ClientQueue::clear() {
  queue_.clear();
  bytes_ = 0;
  burst_count_ = 0;
  burst_bytes_ = 0;
  writing_ = false;
}

size_t ClientQueue::drop_unsent_stream() {
  size_t dropped = 0;
  std::deque<Entry> kept;
  for (size_t i = 0; i < queue_.size(); ++i) {
    const Entry &e = queue_[i];
    const bool stream_msg =
        e.msg->type == wire::MessageType::kBuffer || e.msg->type == wire::MessageType::kCaps;
    if ((i == 0 && writing_) || !stream_msg) {
      kept.push_back(e);
      continue;
    }
    if (e.msg->type == wire::MessageType::kBuffer) dropped++;
    pop_accounting(e);
  }
  queue_.swap(kept);
  // The caps the client has once what is left is written.
  last_caps_ = sent_caps_;
  for (const Entry &e : queue_) {
    if (e.msg->type == wire::MessageType::kCaps) last_caps_ = e.msg.get();
    else if (e.msg->type == wire::MessageType::kBuffer && e.msg->caps) last_caps_ = e.msg->caps.get();
  }
  need_keyframe_ = true;
  return dropped;
}

ClientQueue::Decision ClientQueue::expire(TimePoint now) {
  Decision d;
  if (limits_.max_time.count() <= 0 || now == TimePoint{}) return d;
  bool broken = false;
  d.dropped = drop_stale(now - limits_.max_time, &broken);
  d.purged = d.dropped;
  d.late = d.dropped > 0;
  if (broken && !need_keyframe_) {
    // The next delta unit offered would lack its reference. On a stream
    // without delta units this changes nothing (the next buffer is a
    // keyframe) and the session's keyframe request is a no-op.
    need_keyframe_ = true;
    d.outcome = Outcome::kDroppedOverflow;
  }
  return d;
}

const MessagePtr *ClientQueue::begin_write() {
  if (writing_ || queue_.empty()) return nullptr;
  writing_ = true;
  return &queue_.front().msg;
}

MessagePtr ClientQueue::end_write() {
  pop_accounting(queue_.front());
  MessagePtr msg = std::move(queue_.front().msg);
  queue_.pop_front();
  writing_ = false;
  if (msg->type == wire::MessageType::kCaps) sent_caps_ = msg.get();
  return msg;
}

void ClientQueue::push(const MessagePtr &msg, bool burst) {
  if (msg->type == wire::MessageType::kCaps) last_caps_ = msg.get();
  queue_.push_back(Entry{msg, burst});
  bytes_ += msg->wire_size();
  if (burst) {
    burst_count_++;
    burst_bytes_ += msg->wire_size();
  }
}

void ClientQueue::pop_accounting(const Entry &e) {
  bytes_ -= e.msg->wire_size();
  if (e.burst) {
    burst_count_--;
    burst_bytes_ -= e.msg->wire_size();
  }
}

// Drops every queued message not yet being written; caps sent so far stay valid.
size_t ClientQueue::purge_unsent() {
  size_t dropped = 0;
  const size_t keep = writing_ ? 1 : 0;
  while (queue_.size() > keep) {
    const Entry &e = queue_.back();
    if (e.msg->type == wire::MessageType::kBuffer) dropped++;
    pop_accounting(e);
    queue_.pop_back();
  }
  if (writing_) {
    const MessagePtr &head = queue_.front().msg;
    last_caps_ = head->type == wire::MessageType::kCaps ? head.get() : head->caps.get();
  } else {
    last_caps_ = sent_caps_;
  }
  return dropped;
}

size_t ClientQueue::drop_stale(TimePoint oldest, bool *broken) {
  *broken = false;
  const size_t first_unsent = writing_ ? 1 : 0;
  // Live buffers only: a joiner's burst is old by design and outside the limits.
  auto live_buffer = [](const Entry &e) {
    return e.msg->type == wire::MessageType::kBuffer && !e.burst;
  };
  auto stale = [&](const Entry &e) {
    return live_buffer(e) && e.msg->published != TimePoint{} && e.msg->published < oldest;
  };
  // Publish times grow along the queue: nothing to do unless the oldest is stale.
  size_t i = first_unsent;
  while (i < queue_.size() && !live_buffer(queue_[i])) i++;
  if (i == queue_.size() || !stale(queue_[i])) return 0;
  std::deque<Entry> kept(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(i));
  size_t dropped = 0;
  bool dropping = true;  // what follows a dropped buffer up to the next keyframe is useless
  bool last_dropped = false;
  for (; i < queue_.size(); ++i) {
    Entry &e = queue_[i];
    if (!live_buffer(e)) {
      kept.push_back(std::move(e));  // caps and control messages stay (small, and in order)
      continue;
    }
    if (dropping && (stale(e) || e.msg->delta)) {
      pop_accounting(e);
      dropped++;
      last_dropped = true;
      continue;
    }
    dropping = false;
    last_dropped = false;
    kept.push_back(std::move(e));
  }
  queue_.swap(kept);
  *broken = last_dropped;
  return dropped;
}

const char *queue_outcome_name(ClientQueue::Outcome outcome) {
  switch (outcome) {
    case ClientQueue::Outcome::kQueued:
      return "queued";
    case ClientQueue::Outcome::kQueuedAfterPurge:
      return "queued-after-purge";
    case ClientQueue::Outcome::kIgnored:
      return "ignored";
    case ClientQueue::Outcome::kDroppedForKeyframe:
      return "dropped-for-keyframe";
    case ClientQueue::Outcome::kDroppedOverflow:
      return "dropped-overflow";
  }
  return "unknown";
}

}  // namespace tlsframe
