// One client's send queue as pure policy: no Asio, no OpenSSL, no clock, no
// lock. The session offers it every stream message and writes what it hands
// out; the queue decides what to keep (overflow, keyframe gating, caps
// resends) and returns its decision, so the policy is unit-tested without a
// socket (tests/unit/test_client_queue.cpp). Used by one strand only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "core/message.h"

namespace tlsframe {

struct QueueLimits {
  uint32_t max_buffers = 32;  // buffers queued at most, the one being written included (min 1)
  uint64_t max_bytes = 32ull << 20;  // wire bytes queued at most (min 1)
};

class ClientQueue {
 public:
  explicit ClientQueue(QueueLimits limits);

  // What offer() did with a message.
  enum class Outcome {
    kQueued,              // queued (a buffer may have brought its caps along)
    kQueuedAfterPurge,    // a keyframe that did not fit: the unsent queue was dropped first
    kIgnored,             // caps the client has or will get anyway (not a drop)
    kDroppedForKeyframe,  // a delta unit while waiting for a keyframe
    kDroppedOverflow,     // a delta unit that did not fit: now waiting for a keyframe
  };
  struct Decision {
    Outcome outcome = Outcome::kQueued;
    size_t dropped = 0;         // buffers dropped by this call (the offered one or purged ones)
    bool ask_keyframe = false;  // first delta unit skipped since the join: ask upstream for one
    size_t purged = 0;          // kQueuedAfterPurge: messages dropped from the queue
    bool queued() const {
      return outcome == Outcome::kQueued || outcome == Outcome::kQueuedAfterPurge;
    }
  };

  // A stream message (caps, buffer or EOS) for this client.
  Decision offer(const MessagePtr &msg);
  // The client's last message (an ERROR goodbye): drops everything not being
  // written, then queues msg. Returns the buffers dropped.
  size_t push_final(const MessagePtr &msg);
  // Buffers were lost before they reached this queue: the next buffer must
  // be a keyframe (what follows the lost ones may depend on them).
  void resync() { need_keyframe_ = true; }
  // A keyframe was asked for at the join: no second request at the first skipped delta.
  void keyframe_asked() { keyframe_asked_ = true; }
  // Drops everything (the connection closed; not counted as drops).
  void clear();

  // Writer side. begin_write() marks the front as being written and
  // returns it (nullptr when empty or a write is already in progress);
  // end_write() removes it once fully written.
  const MessagePtr *begin_write();
  MessagePtr end_write();
  bool writing() const { return writing_; }
  bool empty() const { return queue_.empty(); }
  // The message being written (writing() only).
  const MessagePtr &front() const { return queue_.front(); }

  size_t size() const { return queue_.size(); }  // messages queued, the one being written included
  uint64_t bytes() const { return bytes_; }      // their wire bytes
  bool waiting_for_keyframe() const { return need_keyframe_; }

 private:
  void push(const MessagePtr &msg);
  size_t purge_unsent();  // returns the buffers dropped

  QueueLimits limits_;
  std::deque<MessagePtr> queue_;  // front is being written when writing_
  uint64_t bytes_ = 0;
  bool writing_ = false;
  bool need_keyframe_ = true;           // nothing sent yet: start on a keyframe
  bool keyframe_asked_ = false;         // a keyframe was asked for or queued since the join
  const Message *last_caps_ = nullptr;  // caps the client will have seen once its queue is written
  const Message *sent_caps_ = nullptr;  // caps fully written (identity only; may dangle harmlessly)
};

const char *queue_outcome_name(ClientQueue::Outcome outcome);

}  // namespace tlsframe
