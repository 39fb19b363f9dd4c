// What one stream publishes and who gets it: the caps in force, whether it
// has delta units, EOS, buffer sequence numbers, the sessions subscribed to
// it, and keyframe requests for joiners (merged and rate-limited before they
// reach the upstream encoder). Protocol v1 has one stream per server; v2
// names several on one listener.
//
// Threads: publish_*() on the publishing thread only (never concurrently);
// subscribe(), unsubscribe() and request_keyframe() on session strands; the
// keyframe timer on its own strand.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/guarded.h"
#include "core/message.h"
#include "core/wire_format.h"

namespace tlsframe {

class Session;

class Stream {
 public:
  // keyframe_wanted (may be empty) is called on a session strand or the
  // keyframe timer's strand, with no lock held.
  Stream(asio::io_context &io, std::chrono::nanoseconds keyframe_request_interval,
         std::function<void()> keyframe_wanted);

  // Publishing thread. Each message is serialized once and shared by every
  // subscriber's queue.
  void publish_caps(const std::string &caps);
  // With an owner, data is not copied (see Server::publish_buffer).
  void publish_buffer(const wire::BufferMeta &meta, const uint8_t *data, size_t size,
                      std::shared_ptr<const void> owner);
  void publish_eos();

  // What a session joining now must get first.
  struct Joined {
    MessagePtr caps;         // the caps in force (nullptr: none published yet)
    bool at_eos = false;     // EOS published and no buffer since
    bool has_delta = false;  // the stream has delta units: the joiner needs a keyframe
  };
  // A session starts getting what is published from now on; what it must
  // get first is returned under the same lock, so nothing falls between.
  Joined subscribe(const std::shared_ptr<Session> &s);
  void unsubscribe(uint64_t session_id);
  void unsubscribe_all();

  // A subscriber wants a keyframe (it joined a delta-unit stream). Calls
  // keyframe_wanted now if the last call is an interval old, else once at the
  // interval's end if a subscriber that asked is still subscribed then.
  void request_keyframe(uint64_t session_id);
  // No keyframe request from now on; cancels the timer.
  void stop();

 private:
  // Runs update() on the state and snapshots the subscribers under one lock,
  // then hands msg to each.
  template <typename Update>
  void post_to_all(const MessagePtr &msg, Update &&update);
  void on_keyframe_timer();

  std::function<void()> keyframe_wanted_;
  const std::chrono::nanoseconds keyframe_interval_;

  struct State {
    MessagePtr caps;         // the caps in force
    bool has_delta = false;  // a delta unit was published: joiners ask for a keyframe
    bool eos = false;        // EOS published and no buffer since
    std::map<uint64_t, std::shared_ptr<Session>> subscribers;  // by session id
    std::optional<std::chrono::steady_clock::time_point> last_keyframe_request;
    std::vector<uint64_t>
        keyframe_waiters;  // subscribers whose request waits for the interval's end
    bool keyframe_timer_armed = false;
    bool stopped = false;
  };
  Guarded<State> state_;

  asio::strand<asio::io_context::executor_type> keyframe_strand_;
  asio::steady_timer keyframe_timer_;  // only used on keyframe_strand_

  // Publishing thread only:
  uint64_t sequence_ = 0;                           // of the next buffer
  std::vector<std::shared_ptr<Session>> snapshot_;  // post_to_all's, kept for its capacity
};

}  // namespace tlsframe
