// One client's send queue as pure policy: no Asio, no OpenSSL, no clock, no
// lock. The session offers it every stream message and writes what it hands
// out; the queue decides what to keep (overflow, keyframe gating, caps
// resends) and returns its decision, so the policy is unit-tested without a
// socket (tests/unit/test_client_queue.cpp). Used by one strand only.
//
// A joiner's cached GOP (offer_burst(), sync-method latest-keyframe) is
// queued whole, on top of the limits: until those buffers are written, the
// limits apply to what is queued after them. So a GOP longer than
// max_buffers does not make the joiner skip at once, and a client that cannot
// keep up with the live stream behind its burst still skips as any other.
//
// Queued time (max_time): a buffer published more than max_time ago is not
// sent. The age is now minus the buffer's publish time (Message::published,
// steady clock), not a difference of stream timestamps: it counts the time a
// buffer waited in the session's inbox too, works for buffers without
// timestamps, and is what the viewer sees as the server's share of latency.
// The queue has no clock: the session passes `now` to offer() and to
// expire(). Checked at each offer and again before each write (expire()), so
// no buffer older than the bound is started: the stale unsent buffers are
// dropped oldest first, with the delta units that depend on a dropped one; a
// delta unit whose reference was dropped, or an offered buffer already older
// than the bound, is dropped and the client resumes on a keyframe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "core/message.h"

namespace tlsframe {

struct QueueLimits {
  uint32_t max_buffers = 32;  // buffers queued at most, the one being written included (min 1)
  uint64_t max_bytes = 32ull << 20;  // wire bytes queued at most (min 1)
  // Oldest unsent buffer's age at most (now - Message::published); 0 = no
  // bound (the server's default is kDefaultQueueTimeMax, core/server.h).
  std::chrono::nanoseconds max_time{0};
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
    kDroppedOverflow,     // a buffer that did not fit, or too late: now waiting for a keyframe
  };
  struct Decision {
    Outcome outcome = Outcome::kQueued;
    size_t dropped = 0;         // buffers dropped by this call (the offered one or purged ones)
    bool ask_keyframe = false;  // first delta unit skipped since the join: ask upstream for one
    size_t purged = 0;          // kQueuedAfterPurge: messages dropped from the queue
    bool late = false;          // the limit hit was max_time (queued buffers too old)
    bool queued() const {
      return outcome == Outcome::kQueued || outcome == Outcome::kQueuedAfterPurge;
    }
  };

  using TimePoint = std::chrono::steady_clock::time_point;
  // A stream message (caps, buffer or EOS) for this client. now: the
  // session's clock for the max_time bound (TimePoint{} = no time check).
  Decision offer(const MessagePtr &msg, TimePoint now = TimePoint{});
  // A joiner's cached GOP: buffers from a keyframe on (gop[0] must be one,
  // else nothing is queued), each with its caps. Queued whole, outside the
  // limits (see above); the client no longer waits for a keyframe. Returns
  // the buffers queued.
  size_t offer_burst(const std::vector<MessagePtr> &gop);
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
  // A rendition switch: drops the unsent stream messages (buffers and caps)
  // of the rendition left, keeping the message being written and messages
  // for this client alone (WELCOME, STREAM_LIST, RENDITION). Returns the
  // buffers dropped. The next buffer offered must be the target's keyframe.
  size_t drop_unsent_stream();

  // Before a write starts: drops the unsent live buffers older than max_time
  // (as offer() does; offer() alone checks only when the next buffer comes,
  // up to a frame interval later). Returns what it did: dropped (buffers),
  // late, and outcome kDroppedOverflow when the client must now resume on a
  // keyframe (the last buffer queued was dropped; the session asks for one,
  // which is nothing on a stream without delta units), else kQueued.
  Decision expire(TimePoint now);

  // Writer side. begin_write() marks the front as being written and
  // returns it (nullptr when empty or a write is already in progress);
  // end_write() removes it once fully written.
  const MessagePtr *begin_write();
  MessagePtr end_write();
  bool writing() const { return writing_; }
  bool empty() const { return queue_.empty(); }
  // The message being written (writing() only).
  const MessagePtr &front() const { return queue_.front().msg; }

  size_t size() const { return queue_.size(); }  // messages queued, the one being written included
  uint64_t bytes() const { return bytes_; }      // their wire bytes
  size_t burst_size() const { return burst_count_; }  // of them: queued by offer_burst()
  uint64_t burst_bytes() const { return burst_bytes_; }
  bool waiting_for_keyframe() const { return need_keyframe_; }

 private:
  struct Entry {
    MessagePtr msg;
    bool burst;  // queued by offer_burst(): outside the limits
  };
  void push(const MessagePtr &msg, bool burst = false);
  void pop_accounting(const Entry &e);  // bytes_ and the burst counts, for an entry leaving
  size_t purge_unsent();                // returns the buffers dropped
  // max_time: drops the unsent live buffers published before `oldest`, and
  // the delta units after them up to the next keyframe. Returns the buffers
  // dropped; *broken = the last live buffer queued was dropped (a delta unit
  // offered next has lost its reference).
  size_t drop_stale(TimePoint oldest, bool *broken);

  QueueLimits limits_;
  std::deque<Entry> queue_;  // front is being written when writing_
  uint64_t bytes_ = 0;
  size_t burst_count_ = 0;    // entries of queue_ with burst set
  uint64_t burst_bytes_ = 0;  // their wire bytes
  bool writing_ = false;
  bool need_keyframe_ = true;           // nothing sent yet: start on a keyframe
  bool keyframe_asked_ = false;         // a keyframe was asked for or queued since the join
  const Message *last_caps_ = nullptr;  // caps the client will have seen once its queue is written
  const Message *sent_caps_ = nullptr;  // caps fully written (identity only; may dangle harmlessly)
};

const char *queue_outcome_name(ClientQueue::Outcome outcome);

}  // namespace tlsframe
