#include "core/client_queue.h"

#include <algorithm>

namespace tlsframe {

ClientQueue::ClientQueue(QueueLimits limits) : limits_(limits) {
  limits_.max_buffers = std::max<uint32_t>(1, limits_.max_buffers);
  limits_.max_bytes = std::max<uint64_t>(1, limits_.max_bytes);
}

ClientQueue::Decision ClientQueue::offer(const MessagePtr &msg) {
  Decision d;
  if (msg->type == wire::MessageType::kBuffer) {
    if (msg->delta && need_keyframe_) {
      if (!keyframe_asked_) {
        // Joined before the stream showed a delta unit (nothing asked at join),
        // e.g. between a new stream's first keyframe and its first delta: ask
        // now instead of waiting a whole GOP.
        keyframe_asked_ = true;
        d.ask_keyframe = true;
      }
      d.outcome = Outcome::kDroppedForKeyframe;
      d.dropped = 1;
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
        d.dropped = 1;
        return d;
      }
      d.purged = queue_.size() - (writing_ ? 1 : 0);
      d.dropped = purge_unsent();
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
